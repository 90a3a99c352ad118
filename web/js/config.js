// Where the APIs are. A deployed stage ships `config.json` next to index.html (written by
// `make web-config` from the stack outputs); apigw-local serves `/.apigw-local/endpoints.json`.

/**
 * @typedef {object} Config
 * @property {string} websocketUrl  e.g. "wss://abc.execute-api.eu-west-1.amazonaws.com/prod"
 * @property {string} httpApiUrl    e.g. "https://xyz.execute-api.eu-west-1.amazonaws.com"
 * @property {boolean} local        true when read from the emulator (dev sign-in may exist)
 * @property {string} currency      ISO 4217 code used to show amounts (cents → units)
 */

const trimSlash = (url) => url.replace(/\/+$/, "");

async function getJson(url) {
  const res = await fetch(url, { cache: "no-store", credentials: "omit" });
  if (!res.ok) return { status: res.status, body: null };
  return { status: res.status, body: await res.json() };
}

/** @returns {Promise<Config>} */
export async function loadConfig() {
  const deployed = await getJson("config.json");
  if (deployed.body) {
    const { websocketUrl, httpApiUrl, currency } = deployed.body;
    if (!websocketUrl || !httpApiUrl) {
      throw new Error("config.json needs both websocketUrl and httpApiUrl.");
    }
    return {
      websocketUrl: trimSlash(websocketUrl),
      httpApiUrl: trimSlash(httpApiUrl),
      local: false,
      currency: currency || "USD",
    };
  }
  if (deployed.status !== 404) {
    throw new Error(`config.json could not be read (HTTP ${deployed.status}).`);
  }
  const local = await getJson("/.apigw-local/endpoints.json");
  if (!local.body || !local.body.websocket || !local.body.http) {
    throw new Error(
      "No configuration: neither config.json nor the emulator's endpoints.json was found. " +
        "For a deployed stage run `make web-config`; locally run `make run`.",
    );
  }
  return {
    websocketUrl: trimSlash(local.body.websocket),
    httpApiUrl: trimSlash(local.body.http),
    local: true,
    currency: local.body.currency || "USD",
  };
}
