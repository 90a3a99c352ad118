// Formatting of times, money and server errors for people.

/** "18:30" today, "25 Nov, 18:30" otherwise; the exact instant is in the title. */
export function shortTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const today = new Date().toDateString() === d.toDateString();
  const opts = today
    ? { hour: "2-digit", minute: "2-digit" }
    : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  return d.toLocaleString(undefined, opts);
}

export function longTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleString();
}

/** Integer cents → "$1,250.00" in the configured currency. */
export function money(cents, currency = "USD") {
  const units = (Number(cents) || 0) / 100;
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(units);
  } catch {
    return `${units.toFixed(2)} ${currency}`;
  }
}

/** Largest amount the API accepts, in cents (docs/protocol.md). */
export const MAX_CENTS = 100_000_000_00;

/**
 * "12.5" / "12,50" / "1250" → integer cents, parsed as text (no float rounding).
 * Throws an Error with a sentence for anything else.
 */
export function parseCents(text) {
  const s = String(text).trim().replace(/[\s_]/g, "");
  const m = /^(\d{1,9})(?:[.,](\d{1,2}))?$/.exec(s);
  if (!m) throw new Error("Enter an amount like 12.50 (at most two decimals).");
  const cents = Number(m[1]) * 100 + Number((m[2] || "").padEnd(2, "0"));
  if (cents <= 0) throw new Error("The amount must be more than zero.");
  if (cents > MAX_CENTS) throw new Error("That amount is too large.");
  return cents;
}

const ERROR_WORDS = {
  invalid_json: "The server could not read that request.",
  unknown_action: "The server does not know that request.",
  invalid_request: "That request was not accepted.",
  not_member: "You are not in this room (yet).",
  forbidden: "You are not allowed to do that.",
  internal: "Something went wrong on the server. Please try again.",
  unauthorized: "Your sign-in is not valid any more. Please sign in again.",
  not_found: "That no longer exists.",
  already_verified: "That transaction was already verified.",
};

/** A server error ({code, message}) as one sentence or two for a person. */
export function errorText(err) {
  if (!err) return "Something went wrong.";
  const words = ERROR_WORDS[err.code] || "Something went wrong.";
  const detail = typeof err.message === "string" ? err.message.trim() : "";
  return detail && detail !== words ? `${words} ${detail}` : words;
}
