// The admin dashboard: weekly income (Chart.js, live from `income` frames), this week's
// totals, pending transactions with Verify, and a form for new transactions.
import { Api } from "./api.js";
import { connectionBadge, connectUrl } from "./connstate.js";
import { byTestId, fromTemplate, h, say } from "./dom.js";
import { errorText, money, parseCents, shortTime } from "./format.js";
import { LiveSocket } from "./socket.js";

const CHANNEL = "admin_dashboard";

/** Colours from styles.css, so the chart follows the page's palette. */
function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/**
 * Render the dashboard into `main`; returns a function that tears it down.
 * @param {HTMLElement} main
 * @param {{config: object, session: import("./auth.js").Session, onSignedOut: () => void}} ctx
 */
export function mountDashboard(main, { config, session, onSignedOut }) {
  const view = fromTemplate("tpl-dashboard");
  document.title = "Income · Rooms";
  const api = new Api(config.httpApiUrl, session);
  const cur = config.currency;
  const fmt = (cents) => money(cents, cur);

  const errorBox = byTestId(view, "dashboard-error");
  const notice = byTestId(view, "dashboard-notice");
  const chartBox = byTestId(view, "income-chart");
  const table = byTestId(view, "income-table").tBodies[0];
  const pendingList = byTestId(view, "pending-list");
  const pendingEmpty = byTestId(view, "pending-empty");
  const pendingMore = byTestId(view, "pending-more");
  const form = byTestId(view, "new-tx-form");
  byTestId(view, "currency-code").textContent = cur;

  const fail = (err) => {
    say(errorBox, errorText(err));
    if (err.status === 401) onSignedOut();
  };

  // --- the chart ---------------------------------------------------------------

  let chart = null;
  let version = 0; // frames applied (tests read it)
  let serverVersion = -1; // the `version` of the income figures shown
  const exposed = { weeks: [], currentWeek: null, version: 0, updated: null };
  window.__dashboardChart = exposed;

  function drawChart(weeks, currentWeek) {
    const labels = weeks.map((w) => w.week);
    const values = weeks.map((w) => w.total / 100);
    const accent = cssVar("--accent", "#2f5bea");
    const soft = cssVar("--accent-soft", "#9db2f5");
    const colors = weeks.map((w) => (w.week === currentWeek ? accent : soft));
    if (!window.Chart) {
      say(errorBox, "The chart library did not load (run `npm ci` in web/). The table below has the figures.");
      return;
    }
    if (!chart) {
      chart = new window.Chart(chartBox.querySelector("canvas"), {
        type: "bar",
        data: { labels, datasets: [{ label: "Verified income", data: values, backgroundColor: colors, borderRadius: 4 }] },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: { duration: 250 },
          plugins: {
            legend: { display: false },
            tooltip: {
              callbacks: {
                label: (ctx) => {
                  const w = exposed.weeks[ctx.dataIndex];
                  return w ? `${fmt(w.total)} from ${w.count} transactions` : "";
                },
              },
            },
          },
          scales: {
            y: { beginAtZero: true, ticks: { callback: (v) => money(Math.round(v * 100), cur) } },
            x: { ticks: { maxRotation: 60, autoSkip: true } },
          },
        },
      });
      return;
    }
    chart.data.labels = labels;
    chart.data.datasets[0].data = values;
    chart.data.datasets[0].backgroundColor = colors;
    chart.update();
  }

  /** Apply an `income` frame: absolute figures, so applying one twice is harmless; one
   * older than the figures shown (a lower `version`: pushes of concurrent verifies race) is
   * dropped. */
  function applyIncome(frame) {
    if (Number.isInteger(frame.version) && frame.version < serverVersion) {
      chartBox.dataset.stale = String(Number(chartBox.dataset.stale || 0) + 1);
      return;
    }
    if (Number.isInteger(frame.version)) serverVersion = frame.version;
    chartBox.dataset.serverVersion = String(serverVersion);
    const weeks = (frame.weeks || []).map((w) => ({ week: String(w.week), total: Number(w.total) || 0, count: Number(w.count) || 0 }));
    version += 1;
    Object.assign(exposed, { weeks, currentWeek: frame.currentWeek, version, updated: frame.updated ?? null });
    chartBox.dataset.weeks = JSON.stringify(weeks);
    chartBox.dataset.version = String(version);
    drawChart(weeks, frame.currentWeek);

    table.replaceChildren(
      ...weeks.map((w) =>
        h("tr", { class: w.week === frame.currentWeek ? "current" : null },
          h("th", { scope: "row" }, w.week), h("td", {}, fmt(w.total)), h("td", {}, String(w.count))),
      ),
    );

    const now = weeks.find((w) => w.week === frame.currentWeek) || { total: 0, count: 0 };
    byTestId(view, "current-week").textContent = frame.currentWeek ? `(${frame.currentWeek})` : "";
    const total = byTestId(view, "week-total");
    total.textContent = fmt(now.total);
    total.dataset.cents = String(now.total);
    byTestId(view, "week-count").textContent = String(now.count);

    // Verified elsewhere (another admin, or over HTTP): it is not pending any more.
    if (frame.updated?.transactionId) removePending(frame.updated.transactionId);
  }

  // --- pending transactions ----------------------------------------------------

  let pendingNext = null;

  function removePending(id) {
    for (const li of pendingList.querySelectorAll("li")) if (li.dataset.id === id) li.remove();
    pendingEmpty.hidden = pendingList.children.length > 0;
  }

  function pendingItem(tx) {
    const label = tx.description || "(no description)";
    const button = h("button", {
      type: "button",
      class: "primary",
      dataset: { testid: "verify", id: tx.id },
      "aria-label": `Verify ${label}, ${fmt(tx.amount)}`,
    }, "Verify");
    button.addEventListener("click", () => verify(tx, button));
    return h(
      "li",
      { dataset: { testid: "pending-item", id: tx.id, amount: String(tx.amount) } },
      h("div", { class: "tx" },
        h("span", { class: "tx-desc" }, label),
        h("span", { class: "tx-meta muted" }, `${shortTime(tx.createdAt)} · ${tx.week || ""}`)),
      h("span", { class: "tx-amount" }, fmt(tx.amount)),
      button,
    );
  }

  function addPending(txs, { top = false } = {}) {
    for (const tx of txs) {
      if (tx.status && tx.status !== "pending") continue;
      removePending(tx.id);
      const item = pendingItem(tx);
      if (top) pendingList.prepend(item);
      else pendingList.append(item);
    }
    pendingEmpty.hidden = pendingList.children.length > 0;
  }

  async function loadPending({ more = false } = {}) {
    try {
      const page = await api.listTransactions({ status: "pending", next: more ? pendingNext : null });
      if (!more) pendingList.replaceChildren();
      addPending(page.transactions || []);
      pendingNext = page.next ?? null;
      pendingMore.hidden = !pendingNext;
    } catch (err) {
      fail(err);
    }
  }

  async function verify(tx, button) {
    button.disabled = true;
    say(errorBox, "");
    try {
      const res = await api.verifyTransaction(tx.id);
      removePending(tx.id);
      const week = res?.week?.week || tx.week || "its week";
      say(notice, `Verified “${tx.description}”: ${fmt(tx.amount)} added to ${week}.`);
    } catch (err) {
      if (err.status === 409 || err.status === 404) removePending(tx.id);
      else button.disabled = false;
      fail(err);
    }
  }

  pendingMore.addEventListener("click", () => loadPending({ more: true }));

  // --- new transaction ---------------------------------------------------------

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(errorBox, "");
    say(notice, "");
    const amountInput = byTestId(form, "tx-amount");
    const descInput = byTestId(form, "tx-description");
    let cents;
    try {
      cents = parseCents(amountInput.value);
    } catch (err) {
      amountInput.setAttribute("aria-invalid", "true");
      say(errorBox, err.message);
      amountInput.focus();
      return;
    }
    amountInput.removeAttribute("aria-invalid");
    const description = descInput.value.trim();
    if (!description) {
      descInput.setAttribute("aria-invalid", "true");
      say(errorBox, "Add a description.");
      descInput.focus();
      return;
    }
    descInput.removeAttribute("aria-invalid");
    const submit = byTestId(form, "tx-create");
    submit.disabled = true;
    try {
      const res = await api.createTransaction(cents, description);
      addPending([res.transaction], { top: true });
      form.reset();
      say(notice, `Created “${description}” for ${fmt(cents)}: it is waiting for verification.`);
    } catch (err) {
      fail(err);
    } finally {
      submit.disabled = false;
    }
  });

  // --- the socket --------------------------------------------------------------

  const badge = connectionBadge(view, () => socket);
  const socket = new LiveSocket({
    url: () => connectUrl(config.websocketUrl, session.token),
    canRetry: () => session.user !== null,
    onOpen: (sock) => {
      serverVersion = -1; // a new subscription starts from its snapshot
      sock.send({ action: "subscribe", channel: CHANNEL });
      // A verify may have happened while we were away: the snapshot covers the chart,
      // the list needs a reload.
      if (sock.reconnects > 0) loadPending();
    },
    onState: (state, info) => {
      badge(state, info);
      if (state === "closed" && info.reason === "signed-out") onSignedOut();
    },
    onFrame: (frame) => {
      if (frame.type === "income") applyIncome(frame);
      else if (frame.type === "error") say(errorBox, errorText(frame));
    },
  });
  window.__dashboardSocket = socket;

  main.replaceChildren(view);
  socket.start();
  loadPending();

  return () => {
    socket.stop();
    chart?.destroy();
    if (window.__dashboardChart === exposed) delete window.__dashboardChart;
    if (window.__dashboardSocket === socket) delete window.__dashboardSocket;
  };
}
