// The lobby: a display name and a room; a dev sign-in (local only) or a pasted token.
import { devSignIn, DevSignInUnavailable } from "./auth.js";
import { byTestId, fromTemplate, say } from "./dom.js";
import { ROOM_NAME } from "./room.js";

// Display names are token subjects: the same rule as room names (docs/protocol.md).
const USER_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * @param {HTMLElement} main
 * @param {{config: object|null, configError: string|null,
 *          session: import("./auth.js").Session, room?: string, notice?: string,
 *          next?: string, go: (hash: string) => void}} ctx
 */
export function mountLobby(main, { config, configError, session, room, notice, next, go }) {
  const view = fromTemplate("tpl-lobby");
  document.title = "Join a room · Rooms";
  const form = byTestId(view, "lobby-form");
  const nameInput = byTestId(view, "lobby-name");
  const roomInput = byTestId(view, "lobby-room");
  const link = byTestId(view, "room-link");
  const errorBox = byTestId(view, "lobby-error");
  const noticeBox = byTestId(view, "lobby-notice");
  const devBox = byTestId(view, "dev-signin");
  const tokenBox = byTestId(view, "token-box");
  const tokenForm = byTestId(view, "token-form");
  const user = session.user;

  if (room) roomInput.value = room;
  if (user) {
    nameInput.value = user.name;
    byTestId(view, user.role === "admin" ? "role-admin" : "role-user").checked = true;
  } else {
    nameInput.value = sessionStorage.getItem("rooms.lastName") || "";
  }
  say(noticeBox, notice || (user ? `Signed in as ${user.name} (${user.role}).` : ""));
  if (configError) say(errorBox, configError);

  // Deployed stages have no dev sign-in: the token box is the way in.
  const dev = Boolean(config?.local);
  devBox.hidden = !dev;
  if (!dev && !user) tokenBox.open = true;

  function syncLink() {
    const r = roomInput.value.trim();
    if (ROOM_NAME.test(r)) {
      link.href = `#/room/${r}`;
      link.textContent = `#/room/${r}`;
    }
  }
  roomInput.addEventListener("input", syncLink);
  syncLink();

  function invalid(input, message) {
    input.setAttribute("aria-invalid", "true");
    say(errorBox, message);
    input.focus();
    return false;
  }

  /** Make sure there is a session for `name` with `role`; true when ready to go on. */
  async function ensureSignedIn(name, role) {
    const current = session.user;
    if (current && current.name === name && (current.role === role || !dev)) return true;
    if (!dev) {
      if (current) return true; // a pasted token decides name and role
      tokenBox.open = true;
      byTestId(view, "lobby-token").focus();
      say(errorBox, "Paste a token to sign in: there is no dev sign-in on this stage.");
      return false;
    }
    try {
      session.use(await devSignIn(config.httpApiUrl, name, role));
      return true;
    } catch (err) {
      if (err instanceof DevSignInUnavailable) tokenBox.open = true;
      say(errorBox, err.message);
      return false;
    }
  }

  async function enter(target, forceRole) {
    say(errorBox, "");
    if (!config) return say(errorBox, configError || "No configuration.");
    const name = nameInput.value.trim();
    const r = roomInput.value.trim();
    nameInput.removeAttribute("aria-invalid");
    roomInput.removeAttribute("aria-invalid");
    if (dev && !USER_NAME.test(name)) {
      return invalid(nameInput, "Choose a display name of up to 64 letters, digits, “_” or “-”.");
    }
    if (target === "room" && !ROOM_NAME.test(r)) {
      return invalid(roomInput, "Room names have 1 to 64 letters, digits, “_” or “-”.");
    }
    const role = forceRole || form.elements.role.value || "user";
    for (const b of view.querySelectorAll("button")) b.disabled = true;
    try {
      if (!(await ensureSignedIn(name, role))) return false;
      sessionStorage.setItem("rooms.lastName", name);
      if (target === "dashboard") {
        if (!session.isAdmin) return say(errorBox, "The dashboard is for admins: sign in as admin.");
        go("#/dashboard");
      } else {
        sessionStorage.setItem("rooms.lastRoom", r);
        go(`#/room/${r}`);
      }
    } finally {
      for (const b of view.querySelectorAll("button")) b.disabled = false;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    enter(next === "dashboard" ? "dashboard" : "room");
  });
  byTestId(view, "open-dashboard").addEventListener("click", () => enter("dashboard", "admin"));

  tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = byTestId(view, "lobby-token");
    try {
      session.use(input.value);
    } catch (err) {
      return invalid(input, err.message);
    } finally {
      input.value = ""; // do not leave the credential in the DOM
    }
    const r = roomInput.value.trim();
    go(next === "dashboard" && session.isAdmin ? "#/dashboard" : `#/room/${ROOM_NAME.test(r) ? r : "general"}`);
  });

  main.replaceChildren(view);
  (user || !dev ? roomInput : nameInput).focus();
  return () => {};
}
