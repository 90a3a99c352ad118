// A WebSocket that keeps itself connected: exponential backoff with jitter between attempts,
// a visible state, and a hook to re-establish what the view needs (join, subscribe) on open.

/** @typedef {"connecting" | "open" | "reconnecting" | "closed"} ConnState */

const PING_EVERY_MS = 5 * 60 * 1000; // API Gateway closes a connection idle for 10 minutes.

/**
 * The delay before reconnect attempt `attempt` (0-based): "equal jitter" — half of the
 * exponential step is fixed, half random — so clients that lost the server together do not
 * come back together, yet none retries at once in a tight loop.
 */
export function backoffDelay(attempt, { baseMs = 500, capMs = 15000, random = Math.random } = {}) {
  const step = Math.min(capMs, baseMs * 2 ** attempt);
  return step / 2 + random() * (step / 2);
}

export class LiveSocket {
  /**
   * @param {object} opts
   * @param {() => string} opts.url           builds the connect URL (token included) per attempt
   * @param {(sock: LiveSocket) => void} opts.onOpen   send join/subscribe here
   * @param {(frame: object) => void} opts.onFrame     every JSON frame from the server
   * @param {(state: ConnState, info: object) => void} opts.onState
   * @param {() => boolean} [opts.canRetry]   false stops retrying (e.g. the token expired)
   * @param {number} [opts.maxAttempts]       consecutive failed attempts before giving up
   */
  constructor({ url, onOpen, onFrame, onState, canRetry = () => true, maxAttempts = 10 }) {
    Object.assign(this, { url, onOpen, onFrame, onState, canRetry, maxAttempts });
    /** @type {ConnState} */
    this.state = "closed";
    this.ws = null;
    this.attempt = 0; // consecutive attempts that did not get a frame back
    this.timer = null;
    this.pinger = null;
    this.stopped = true;
    this.reconnects = 0; // successful re-opens after the first (tests read it)
    this.everOpened = false;
    this.transitions = []; // the latest states, oldest first (for tests and debugging)
  }

  start() {
    this.stopped = false;
    this.attempt = 0;
    this._connect("connecting");
  }

  /** Close for good (leaving the view, signing out). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) {
      this.ws.onclose = this.ws.onerror = this.ws.onmessage = this.ws.onopen = null;
      this.ws.close(1000, "bye");
      this.ws = null;
    }
    this._set("closed", { reason: "stopped" });
  }

  /** Try now instead of waiting for the backoff timer. */
  reconnectNow() {
    if (this.state === "open" || this.state === "connecting") return;
    clearTimeout(this.timer);
    this.stopped = false;
    this.attempt = 0;
    this._connect("reconnecting");
  }

  /** Send a frame; false when the socket is not open (nothing is queued). */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  _set(state, info = {}) {
    this.state = state;
    this.transitions.push(state);
    if (this.transitions.length > 50) this.transitions.shift();
    this.onState(state, { attempt: this.attempt, ...info });
  }

  _connect(state) {
    this._set(state);
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      // A malformed URL will not get better by retrying.
      this._set("closed", { reason: "bad-url" });
      return;
    }
    this.ws = ws;
    let gotFrame = false;
    ws.onopen = () => {
      if (this.everOpened) this.reconnects += 1;
      this.everOpened = true;
      this._set("open");
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ action: "ping" }), PING_EVERY_MS);
      this.onOpen(this);
    };
    ws.onmessage = (event) => {
      if (!gotFrame) {
        gotFrame = true;
        this.attempt = 0; // the route works end to end: a later drop starts the backoff anew
      }
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // not ours to show; the protocol only sends JSON objects
      }
      if (frame && typeof frame === "object") this.onFrame(frame);
    };
    ws.onclose = (event) => {
      clearInterval(this.pinger);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      this._scheduleRetry(event.code);
    };
    // onerror is always followed by onclose; the reason is not exposed to scripts.
    ws.onerror = () => {};
  }

  _scheduleRetry(code) {
    if (!this.canRetry()) {
      this._set("closed", { reason: "signed-out", code });
      return;
    }
    if (this.attempt >= this.maxAttempts) {
      this._set("closed", { reason: "gave-up", code });
      return;
    }
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this._set("reconnecting", { delay, code });
    this.timer = setTimeout(() => this._connect("reconnecting"), delay);
  }
}
