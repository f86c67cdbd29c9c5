// The same-origin API. Every call that returns words passes the page's language.

export class ApiError extends Error {
  constructor(status, body) {
    const message = body && typeof body === "object" && body.error ? body.error : `HTTP ${status}`;
    super(message);
    this.status = status;
    this.field = body && body.field;
  }
}

const BASE = new URL("../v1/", document.baseURI); // the board lives at /ui/, the API at /v1/

async function request(path, options, query) {
  const url = new URL(path, BASE);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
  }
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, ...options });
  } catch (err) {
    throw new ApiError(0, { error: `the service did not answer (${err.message})` });
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export function get(path, query) {
  return request(path, { method: "GET" }, query);
}

export function post(path, body) {
  const clean = Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null && v !== undefined));
  return request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(clean),
  });
}
