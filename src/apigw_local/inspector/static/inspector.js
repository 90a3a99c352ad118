// The inspector page: a snapshot, then live changes, over /live (a WebSocket on the same
// origin); actions through the JSON API. Plain ES modules, no build step.

import { bytes, el, failed, fill, identity, itemColumns, itemValue, row, statusText, time } from "./render.js";

const BASE = new URL(".", import.meta.url).pathname.replace(/\/$/, "");  // "/_apigw-local"
const API = `${BASE}/api`;
const MAX_ROWS = 200;

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

const state = {
  connections: new Map(),  // id → view
  invocations: [],         // oldest first
  selected: null,          // seq of the invocation shown in detail
  tableNext: null,
};

async function call(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(`${API}${path}`, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || `${response.status} ${response.statusText}`);
  return data;
}

function say(target, text, ok) {
  target.textContent = text;
  target.className = `result ${ok ? "ok" : "failed"}`;
}

// -- connections ------------------------------------------------------------------------------

function renderConnections() {
  const rows = [...state.connections.values()].sort((a, b) => a.connected_at - b.connected_at);
  $("connections").tBodies[0].replaceChildren(...rows.map((c) => row([
    el("td", { className: "mono", text: c.id }),
    `${c.api} /${c.stage}`,
    identity(c),
    time(c.connected_at),
    time(c.last_active),
    `${c.frames_in} / ${c.frames_out}`,
    `${bytes(c.bytes_in)} / ${bytes(c.bytes_out)}`,
    c.state,
  ], { "data-connection": c.id })));
  $("connection-count").textContent = String(rows.length);
  $("no-connections").hidden = rows.length > 0;
  const open = rows.filter((c) => c.state !== "CLOSED");
  fill($("act-connection"), open.map((c) => [c.id, `${c.id} (${identity(c)})`]));
  const none = open.length === 0;
  for (const id of ["act-post", "act-disconnect", "act-connection"]) $(id).disabled = none;
}

async function postFrame(event) {
  event.preventDefault();
  const id = $("act-connection").value;
  try {
    const answer = await call("POST", `/connections/${encodeURIComponent(id)}/messages`,
      { data: $("act-data").value });
    say($("act-result"), `Posted ${answer.bytes} bytes to ${id}.`, true);
  } catch (error) {
    say($("act-result"), `Not posted: ${error.message}`, false);
  }
}

async function disconnect() {
  const id = $("act-connection").value;
  try {
    await call("DELETE", `/connections/${encodeURIComponent(id)}`);
    say($("act-result"), `Disconnected ${id}.`, true);
  } catch (error) {
    say($("act-result"), `Not disconnected: ${error.message}`, false);
  }
}

// -- invocations ------------------------------------------------------------------------------

function renderInvocations() {
  const rows = state.invocations.slice(-MAX_ROWS).reverse();
  $("invocations").tBodies[0].replaceChildren(...rows.map((inv) => {
    const show = el("button", {
      text: `#${inv.seq}`, className: "link",
      attrs: { type: "button", "aria-label": `Show invocation ${inv.seq} of ${inv.function}` },
    });
    show.addEventListener("click", () => select(inv.seq));
    const classes = [failed(inv) ? "failed" : "", inv.seq === state.selected ? "selected" : ""];
    return row([
      el("td", {}, [show]),
      time(inv.time),
      inv.function,
      inv.route_key,
      el("td", { className: "mono", text: inv.connection_id || "" }),
      `${inv.duration_ms.toFixed(1)} ms`,
      statusText(inv),
    ], { class: classes.join(" ").trim(), "data-seq": String(inv.seq) });
  }));
  $("invocation-count").textContent = String(state.invocations.length);
  $("no-invocations").hidden = state.invocations.length > 0;
}

async function select(seq) {
  state.selected = seq;
  const detail = $("invocation-detail");
  let inv;
  try {
    inv = await call("GET", `/invocations/${seq}`);  // rows carry no logs or event: fetch them
  } catch (error) {
    detail.hidden = true;
    say($("replay-result"), `Invocation #${seq}: ${error.message}`, false);
    return;
  }
  detail.hidden = false;
  const title = detail.querySelector("h3");
  title.textContent = `#${inv.seq} ${inv.function} · ${inv.route_key} · ${statusText(inv)}` +
    (inv.replay_of ? ` (replay of #${inv.replay_of})` : "");
  const error = $("detail-error");
  error.hidden = !inv.error_type;
  error.textContent = inv.error_type ? `${inv.error_type}: ${inv.error_message || ""}` : "";
  const logs = inv.logs.join("\n") +
    (inv.logs_truncated ? `\n… ${inv.logs_truncated} earlier lines left out` : "");
  $("detail-logs").textContent = logs || "(no output)";
  $("detail-event").textContent = inv.event === null ? "(too large to keep)" :
    JSON.stringify(inv.event, null, 2);
  $("detail-replay").disabled = inv.event === null;
  $("replay-result").textContent = "";
  renderInvocations();
  title.focus();
}

async function replay() {
  const seq = state.selected;
  try {
    const inv = await call("POST", `/invocations/${seq}/replay`, {});
    say($("replay-result"), `Replayed as #${inv.seq}: ${statusText(inv)} in ${inv.duration_ms.toFixed(1)} ms.`, !failed(inv));
  } catch (error) {
    say($("replay-result"), `Not replayed: ${error.message}`, false);
  }
}

// -- routes and tables ------------------------------------------------------------------------

function renderApp(app) {
  $("routes").tBodies[0].replaceChildren(...app.routes.map((r) => row([
    r.api, el("td", { className: "mono", text: r.route_key }), r.function || "(none)",
  ])));
  fill($("table-select"), app.tables.map((t) => [t.logical_id, `${t.logical_id} (${t.name})`]));
  const none = app.tables.length === 0;
  $("table-load").disabled = none;
  $("table-select").disabled = none;
  if (none) $("table-status").textContent = "The template declares no tables.";
}

async function loadItems(start) {
  const table = $("table-select").value;
  const query = new URLSearchParams({ limit: "25" });
  if (start) query.set("start", start);
  try {
    const page = await call("GET", `/tables/${encodeURIComponent(table)}/items?${query}`);
    const columns = itemColumns(page.items);
    const items = $("items");
    items.hidden = false;
    items.tHead.rows[0].replaceChildren(...columns.map((c) => el("th", { text: c, attrs: { scope: "col" } })));
    items.tBodies[0].replaceChildren(...page.items.map((item) => row(columns.map((c) => itemValue(item[c])))));
    state.tableNext = page.next;
    $("table-next").hidden = !page.next;
    say($("table-status"), `${page.items.length} item${page.items.length === 1 ? "" : "s"} of ${table}${page.next ? "; more follow" : ""}.`, true);
  } catch (error) {
    say($("table-status"), `Could not read ${table}: ${error.message}`, false);
  }
}

// -- live -------------------------------------------------------------------------------------

function notices(list) {
  if (!list.length) return;
  const box = $("notices");
  box.hidden = false;
  const ul = $("notice-list");
  for (const text of list) ul.append(el("li", { text }));
  while (ul.children.length > 20) ul.firstElementChild.remove();
}

function apply(message) {
  for (const c of message.connections || []) state.connections.set(c.id, c);
  for (const c of message.closed || []) state.connections.delete(c.id);
  const last = state.invocations.at(-1)?.seq ?? 0;
  const fresh = (message.invocations || []).filter((inv) => inv.seq > last);  // not in the snapshot
  if (fresh.length) {
    state.invocations.push(...fresh);
    if (state.invocations.length > MAX_ROWS) state.invocations.splice(0, state.invocations.length - MAX_ROWS);
  }
  notices(message.notices || []);
  renderConnections();
  if (fresh.length) renderInvocations();
}

function snapshot(data) {
  state.connections = new Map(data.connections.map((c) => [c.id, c]));
  state.invocations = data.invocations;
  $("notice-list").replaceChildren();
  notices(data.notices);
  renderApp(data.app);
  renderConnections();
  renderInvocations();
}

function live(delay = 500) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}${BASE}/live`);
  const status = $("live-status");
  socket.addEventListener("open", () => { status.textContent = "Live"; delay = 500; });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "snapshot") snapshot(message); else apply(message);
  });
  socket.addEventListener("close", () => {
    status.textContent = "Disconnected; reconnecting…";
    setTimeout(() => live(Math.min(delay * 2, 5000)), delay);
  });
}

$("connection-form").addEventListener("submit", postFrame);
$("act-disconnect").addEventListener("click", disconnect);
$("detail-replay").addEventListener("click", replay);
$("table-form").addEventListener("submit", (event) => { event.preventDefault(); loadItems(null); });
$("table-next").addEventListener("click", () => loadItems(state.tableNext));
live();
