// The room view: messages, history with "load older", presence, composer, live connection.
import { connectionBadge, connectUrl } from "./connstate.js";
import { byTestId, fromTemplate, h, say } from "./dom.js";
import { errorText, longTime, shortTime } from "./format.js";
import { LiveSocket } from "./socket.js";

export const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_TEXT = 2000;
const ACK_TIMEOUT_MS = 10000; // no ack by then: send the same clientId again
const RETRY_DELAY_MS = 500;

/** A client id for a send: its retries carry the same one (docs/protocol.md, "Sending"). */
function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

const order = (m) => `${m.sentAt || ""}\u0000${m.id || ""}`;

/**
 * Render the room into `main`; returns a function that tears it down.
 * @param {HTMLElement} main
 * @param {{config: object, session: import("./auth.js").Session, room: string,
 *          onSignedOut: () => void}} ctx
 */
export function mountRoom(main, { config, session, room, onSignedOut }) {
  const view = fromTemplate("tpl-room");
  const me = session.user.name;
  byTestId(view, "room-name").textContent = room;
  document.title = `#${room} · Rooms`;

  const list = byTestId(view, "messages");
  const errorBox = byTestId(view, "room-error");
  const olderBtn = byTestId(view, "load-older");
  const startNote = byTestId(view, "history-start");
  const presenceList = byTestId(view, "presence-list");
  const presenceCount = byTestId(view, "presence-count");
  const form = byTestId(view, "composer");
  const input = byTestId(view, "composer-input");
  const sendBtn = byTestId(view, "composer-send");

  /** Messages shown, by id; `keys` is their sort keys in display order. */
  const shown = new Map();
  const keys = [];
  let cursor = null; // history `next` for "load older"
  let joined = false; // the join's history arrived on this connection
  let olderPending = false;
  let members = new Set();

  // --- sending: one message in flight, acknowledged, retried with the same clientId ------
  /** Messages typed but not acknowledged, oldest first; `outbox[0]` is in flight. */
  const outbox = [];
  let nextSeq = 1; // per connection: starts at 1 on every (re)connect
  let inFlight = false;
  let ackTimer = null;
  let retryTimer = null;

  function showOutbox() {
    view.dataset.unacked = String(outbox.length);
  }

  /** Send `outbox[0]` unless one is in flight; after a join, as sends need membership. */
  function pump() {
    if (inFlight || outbox.length === 0 || !joined) return;
    transmit();
  }

  function transmit() {
    const m = outbox[0];
    if (m.seq === null) m.seq = nextSeq;
    clearTimeout(ackTimer);
    clearTimeout(retryTimer);
    inFlight = socket.send({ action: "send", room, text: m.text, clientId: m.clientId, seq: m.seq });
    m.attempts += 1;
    view.dataset.sendAttempts = String(m.attempts);
    if (inFlight) ackTimer = setTimeout(() => retry(0), ACK_TIMEOUT_MS);
  }

  /** The in-flight send failed or went unanswered: the same clientId again, a bit later. */
  function retry(delay = RETRY_DELAY_MS) {
    inFlight = false;
    clearTimeout(ackTimer);
    clearTimeout(retryTimer);
    retryTimer = setTimeout(pump, delay);
  }

  function acknowledged(frame) {
    const m = outbox[0];
    if (!m || frame.clientId !== m.clientId) return; // an ack of an earlier retry
    clearTimeout(ackTimer);
    outbox.shift();
    nextSeq = (Number.isInteger(frame.seq) ? frame.seq : m.seq) + 1;
    inFlight = false;
    showOutbox();
    pump();
  }

  /** An error that answers our in-flight send: retry, renumber, or give it up. */
  function sendFailed(frame) {
    const m = outbox[0];
    if (!m || frame.clientId !== m.clientId) return false;
    if (frame.code === "out_of_order" && Number.isInteger(frame.expected)) {
      m.seq = frame.expected; // this connection waits for that number: the message keeps its id
      nextSeq = frame.expected;
      retry(0);
    } else if (frame.code === "internal") {
      retry();
    } else if (frame.code === "not_member") {
      inFlight = false; // resent after the re-join's history
      joined = false;
    } else {
      outbox.shift(); // refused for good (invalid_request): say why, go on with the rest
      inFlight = false;
      input.value = input.value || m.text;
      showOutbox();
      pump();
    }
    return true;
  }

  // --- messages --------------------------------------------------------------

  function messageItem(m) {
    const own = m.sender === me;
    return h(
      "li",
      {
        class: own ? "msg own" : "msg",
        dataset: { testid: "message", id: m.id, sender: m.sender },
      },
      h(
        "div",
        { class: "meta" },
        h("span", { class: "sender", dataset: { testid: "message-sender" } }, own ? `${m.sender} (you)` : m.sender),
        " ",
        h("time", { datetime: m.sentAt, title: longTime(m.sentAt) }, shortTime(m.sentAt)),
      ),
      h("p", { class: "text", dataset: { testid: "message-text" } }, m.text),
    );
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  }

  /** Insert messages in time order, skipping ones already shown (reconnects repeat history). */
  function addMessages(messages, { older = false } = {}) {
    const stick = !older && nearBottom();
    const before = list.scrollHeight;
    for (const m of messages) {
      if (!m || typeof m.id !== "string" || shown.has(m.id)) continue;
      const key = order(m);
      let lo = 0;
      let hi = keys.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (keys[mid] <= key) lo = mid + 1;
        else hi = mid;
      }
      const item = messageItem(m);
      list.insertBefore(item, list.children[lo] || null);
      keys.splice(lo, 0, key);
      shown.set(m.id, item);
    }
    if (older) list.scrollTop += list.scrollHeight - before; // keep the reader's place
    else if (stick) list.scrollTop = list.scrollHeight;
  }

  function updateOlder() {
    olderBtn.hidden = !(joined && cursor);
    olderBtn.disabled = olderPending;
    startNote.hidden = !(joined && !cursor && shown.size > 0);
  }

  // --- presence --------------------------------------------------------------

  function renderPresence() {
    if (socket.state === "open") members.add(me);
    const names = [...members].sort((a, b) => a.localeCompare(b));
    presenceList.replaceChildren(
      ...names.map((name) =>
        h("li", { dataset: { testid: "presence-member", user: name }, class: name === me ? "me" : null }, name === me ? `${name} (you)` : name),
      ),
    );
    presenceCount.textContent = String(names.length);
  }

  // --- the socket --------------------------------------------------------------

  const badge = connectionBadge(view, () => socket);
  const socket = new LiveSocket({
    url: () => connectUrl(config.websocketUrl, session.token, room),
    canRetry: () => session.user !== null,
    onOpen: (sock) => {
      joined = false;
      // A new connection numbers its sends from 1; an unacknowledged message is sent again
      // (same clientId: the server stores and delivers it once) after the join.
      nextSeq = 1;
      inFlight = false;
      clearTimeout(ackTimer);
      for (const m of outbox) m.seq = null;
      view.dataset.joined = "false";
      view.dataset.reconnects = String(sock.reconnects);
      olderPending = false;
      updateOlder();
      sock.send({ action: "join", room });
    },
    onState: (state, info) => {
      badge(state, info);
      sendBtn.disabled = state !== "open";
      if (state === "closed" && info.reason === "signed-out") onSignedOut();
    },
    onFrame: (frame) => {
      if (frame.room && frame.room !== room) return; // another room's frame: not for this view
      switch (frame.type) {
        case "message":
          addMessages([frame]);
          break;
        case "history": {
          const older = olderPending;
          const first = !joined;
          olderPending = false;
          addMessages(frame.messages || [], { older });
          // The join's history sets the cursor only for an empty view: after a reconnect the
          // cursor already points past the oldest message shown.
          if (older || (first && keys.length === (frame.messages || []).length)) {
            cursor = frame.next ?? null;
          }
          if (first && !older) {
            joined = true;
            view.dataset.joined = "true";
            list.scrollTop = list.scrollHeight;
            pump();
          }
          updateOlder();
          break;
        }
        case "ack":
          acknowledged(frame);
          break;
        case "presence":
          members = new Set(frame.members || []);
          renderPresence();
          break;
        case "joined":
          members.add(frame.user);
          renderPresence();
          break;
        case "left":
          if (frame.user !== me) members.delete(frame.user);
          renderPresence();
          break;
        case "error":
          if (sendFailed(frame) && (frame.code === "out_of_order" || frame.code === "internal")) break;
          say(errorBox, errorText(frame));
          if (frame.action === "history") {
            olderPending = false;
            updateOlder();
          }
          if (frame.code === "not_member" && frame.action !== "join") {
            socket.send({ action: "join", room });
          }
          break;
        default:
          // API Gateway's answer when the handler failed: {"message": "Internal server error", …}
          if (!frame.type && typeof frame.message === "string" && inFlight) retry();
          break; // pong and anything newer
      }
    },
  });
  view.dataset.socket = "room";
  // Tests (and curious developers) can see how many times the socket came back.
  window.__roomSocket = socket;

  // --- controls ----------------------------------------------------------------

  olderBtn.addEventListener("click", () => {
    if (!cursor || olderPending) return;
    say(errorBox, "");
    olderPending = socket.send({ action: "history", room, before: cursor, limit: 50 });
    if (!olderPending) say(errorBox, "Not connected: older messages cannot be loaded right now.");
    updateOlder();
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    if (text.length > MAX_TEXT) {
      say(errorBox, `A message can have at most ${MAX_TEXT} characters.`);
      return;
    }
    if (socket.state !== "open") {
      say(errorBox, "Not connected: your message was not sent. It is still in the box.");
      return;
    }
    say(errorBox, "");
    input.value = "";
    outbox.push({ clientId: newClientId(), text, seq: null, attempts: 0 });
    showOutbox();
    pump();
  });

  main.replaceChildren(view);
  renderPresence();
  socket.start();
  input.focus();

  return () => {
    clearTimeout(ackTimer);
    clearTimeout(retryTimer);
    socket.stop();
    if (window.__roomSocket === socket) delete window.__roomSocket;
  };
}
