// Small DOM helpers. Everything that comes from a user or the network goes into the page
// through textContent / text nodes / setAttribute: never through innerHTML.

/** Create an element: h("li", {class: "x", dataset: {id}}, "text", childNode). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  // append() turns strings into text nodes: markup in them stays text.
  el.append(...children.flat().filter((c) => c != null && c !== false));
  return el;
}

/** Clone a <template id=...> and return its first element. */
export function fromTemplate(id) {
  const tpl = document.getElementById(id);
  return tpl.content.firstElementChild.cloneNode(true);
}

/** Find by data-testid inside root (the ids are stable hooks for tests and code alike). */
export function byTestId(root, id) {
  return root.querySelector(`[data-testid="${id}"]`);
}

/** Show a message in a role=alert/status element, or hide it when text is empty. */
export function say(el, text) {
  el.textContent = text || "";
  el.hidden = !text;
}
