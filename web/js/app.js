// Entry point: load the config, then route between lobby, room and dashboard by the hash
// (#/, #/room/NAME, #/dashboard). The token never appears in the page URL.
import { Session } from "./auth.js";
import { loadConfig } from "./config.js";
import { mountDashboard } from "./dashboard.js";
import { mountLobby } from "./lobby.js";
import { mountRoom, ROOM_NAME } from "./room.js";

const session = new Session();
const main = document.getElementById("main");
let config = null;
let configError = null;
let unmount = () => {};

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash; // hashchange → route()
}

function signedOut(notice = "Your sign-in has expired. Please sign in again.") {
  session.clear();
  show("lobby", { notice });
}

function show(name, extra = {}) {
  unmount();
  unmount = () => {};
  const ctx = { config, configError, session, go, onSignedOut: () => signedOut(), ...extra };
  if (name === "room") unmount = mountRoom(main, ctx);
  else if (name === "dashboard") unmount = mountDashboard(main, ctx);
  else unmount = mountLobby(main, ctx);
  document.body.dataset.currentView = name;
  renderNav();
}

function route() {
  const hash = location.hash || "#/";
  const roomMatch = /^#\/room\/(.+)$/.exec(hash);
  const user = session.user;
  if (roomMatch) {
    const room = decodeURIComponent(roomMatch[1]);
    if (!ROOM_NAME.test(room)) return show("lobby", { notice: "That room name is not valid." });
    if (!user || !config) return show("lobby", { room, notice: `Sign in to join #${room}.` });
    return show("room", { room });
  }
  if (hash === "#/dashboard") {
    if (!user || !config) return show("lobby", { next: "dashboard", notice: "Sign in as an admin to see the dashboard." });
    if (user.role !== "admin") return show("lobby", { notice: "The dashboard is for admins." });
    return show("dashboard");
  }
  return show("lobby");
}

function renderNav() {
  const user = session.user;
  const item = (name) => document.querySelector(`[data-nav="${name}"]`);
  const lastRoom = sessionStorage.getItem("rooms.lastRoom") || "general";
  item("room").hidden = !user;
  item("room").querySelector("a").href = `#/room/${ROOM_NAME.test(lastRoom) ? lastRoom : "general"}`;
  item("dashboard").hidden = user?.role !== "admin";
  item("user").hidden = !user;
  item("user").querySelector("span").textContent = user ? `${user.name} · ${user.role}` : "";
  item("signout").hidden = !user;
  for (const a of document.querySelectorAll(".nav-list a")) {
    if (a.getAttribute("href") === location.hash) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

document.querySelector('[data-testid="sign-out"]').addEventListener("click", () => {
  session.clear();
  unmount();
  unmount = () => {};
  if (location.hash === "#/" || !location.hash) route();
  else location.hash = "#/";
});

window.addEventListener("hashchange", route);

try {
  config = await loadConfig();
} catch (err) {
  configError = err.message;
}
document.body.dataset.ready = "true";
route();
