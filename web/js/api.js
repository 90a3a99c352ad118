// The HTTP API (docs/protocol.md "HTTP API"): every route takes `Authorization: Bearer JWT`.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  /** @param {string} baseUrl @param {import("./auth.js").Session} session */
  constructor(baseUrl, session) {
    this.baseUrl = baseUrl;
    this.session = session;
  }

  async request(method, path, body) {
    const headers = { Authorization: `Bearer ${this.session.token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "network", "Could not reach the API. Check your connection.");
    }
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const code = data?.code || (res.status === 401 ? "unauthorized" : "internal");
      throw new ApiError(res.status, code, data?.message || `HTTP ${res.status}`);
    }
    return data;
  }

  listTransactions({ status = "pending", limit = 50, next = null } = {}) {
    const q = new URLSearchParams({ status, limit: String(limit) });
    if (next) q.set("next", next);
    return this.request("GET", `/transactions?${q}`);
  }

  createTransaction(amount, description) {
    return this.request("POST", "/transactions", { amount, description });
  }

  verifyTransaction(id) {
    return this.request("POST", `/transactions/${encodeURIComponent(id)}/verify`);
  }
}
