// Rendering helpers. Every value from the emulator is user data (connection ids, user agents,
// log lines, items): it is written with textContent only, never parsed as HTML.

export function el(tag, { text, className, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

export function row(cells, attrs = {}) {
  const tr = el("tr", { attrs });
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", { text: cell }));
  return tr;
}

export function time(ms) {
  if (!ms) return "";
  return new Date(ms).toLocaleTimeString([], { hour12: false }) +
    "." + String(ms % 1000).padStart(3, "0");
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function identity(c) {
  const parts = [c.source_ip];
  if (c.principal) parts.unshift(c.principal);
  if (c.user_agent) parts.push(c.user_agent);
  return parts.join(" · ");
}

export function statusText(inv) {
  return inv.error_type ? `${inv.status} ${inv.error_type}` : String(inv.status);
}

export function failed(inv) {
  return Boolean(inv.error_type) || (typeof inv.status === "number" && inv.status >= 400) ||
    inv.status === "error";
}

// One cell per attribute name across the page of items; values shown as compact JSON.
export function itemColumns(items) {
  const names = [];
  for (const item of items) for (const name of Object.keys(item)) {
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

export function itemValue(value) {
  if (value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

export function fill(select, options, keep) {
  const previous = keep ?? select.value;
  select.replaceChildren(...options.map(([value, label]) => el("option", { text: label, attrs: { value } })));
  if (options.some(([value]) => value === previous)) select.value = previous;
}
