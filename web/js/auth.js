// The session: one token per browser tab, kept in sessionStorage.
// The token is a bearer credential: it goes into the WebSocket connect URL and the
// Authorization header, and nowhere else (not the page URL, not the console, not the DOM).

const KEY = "rooms.token";

/** Decode a JWT's claims for display. The server verifies the signature; we only read. */
export function readClaims(token) {
  const parts = String(token).split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(b64.padEnd(b64.length + ((4 - (b64.length % 4)) % 4), "="));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof claims.sub !== "string" || !claims.sub) return null;
    return claims;
  } catch {
    return null;
  }
}

/** True when the claims have an `exp` in the past (with a little clock skew allowed). */
export function isExpired(claims, skewSeconds = 30) {
  return typeof claims.exp === "number" && claims.exp * 1000 < Date.now() - skewSeconds * 1000;
}

export class Session {
  /** @param {Storage} storage */
  constructor(storage = window.sessionStorage) {
    this.storage = storage;
  }

  get token() {
    return this.storage.getItem(KEY);
  }

  /** {sub, role, exp, ...} of a usable token, or null. */
  get user() {
    const token = this.token;
    if (!token) return null;
    const claims = readClaims(token);
    if (!claims || isExpired(claims)) return null;
    return { name: claims.sub, role: claims.role === "admin" ? "admin" : "user", exp: claims.exp };
  }

  get isAdmin() {
    return this.user?.role === "admin";
  }

  /** Store a token after checking it looks like one; returns its user or throws. */
  use(token) {
    const trimmed = String(token).trim();
    const claims = readClaims(trimmed);
    if (!claims) throw new Error("That does not look like a token (a JWT with a subject).");
    if (isExpired(claims)) throw new Error("That token has expired.");
    this.storage.setItem(KEY, trimmed);
    return this.user;
  }

  clear() {
    this.storage.removeItem(KEY);
  }
}

/** Thrown when the local-only dev sign-in endpoint is not there (a deployed stage). */
export class DevSignInUnavailable extends Error {}

/**
 * Ask the local app's `POST /dev/token` for a token ({user, role} → {token}).
 * Exists only in local/template.yaml; a deployed stage answers 404 (or nothing).
 */
export async function devSignIn(httpApiUrl, user, role) {
  let res;
  try {
    res = await fetch(`${httpApiUrl}/dev/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user, role }),
      credentials: "omit",
    });
  } catch {
    throw new Error("Could not reach the API for the dev sign-in. Is the app running?");
  }
  if (res.status === 404 || res.status === 405) {
    throw new DevSignInUnavailable("Dev sign-in is not available here: paste a token instead.");
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok || typeof body.token !== "string") {
    throw new Error(body.message || `Dev sign-in failed (HTTP ${res.status}).`);
  }
  return body.token;
}
