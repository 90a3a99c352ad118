// The connection badge shared by the room and the dashboard.
import { byTestId } from "./dom.js";

const WORDS = {
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting…",
  closed: "Disconnected",
};

/** Wire a `[data-testid=connection-state]` element to a LiveSocket's states. */
export function connectionBadge(root, getSocket) {
  const badge = byTestId(root, "connection-state");
  const text = badge.querySelector(".conn-text");
  const retry = byTestId(root, "reconnect-now");
  retry.addEventListener("click", () => getSocket()?.reconnectNow());
  return (state, info = {}) => {
    badge.dataset.state = state;
    let words = WORDS[state] || state;
    if (state === "reconnecting" && info.delay) {
      words = `Reconnecting in ${Math.max(1, Math.round(info.delay / 1000))} s…`;
    }
    if (state === "closed" && info.reason === "gave-up") {
      words = "Disconnected: the server could not be reached.";
    }
    text.textContent = words;
    retry.hidden = !(state === "reconnecting" || (state === "closed" && info.reason !== "stopped"));
  };
}

/** The connect URL: stage URL + ?token=…[&room=…] (docs/protocol.md "WebSocket API"). */
export function connectUrl(websocketUrl, token, room) {
  const url = new URL(websocketUrl);
  url.searchParams.set("token", token);
  if (room) url.searchParams.set("room", room);
  return url.toString();
}
