// The same-origin API. Every call that returns words passes the page's language. When the service asks for a key
// (401), the board asks for it once (key.js) and sends it with every call as `Authorization: Bearer <key>`.

import { askKey, forgetKey, savedKey } from "./key.js";

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
  for (;;) {
    const key = savedKey();
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    if (key) headers.Authorization = `Bearer ${key}`;
    let response;
    try {
      response = await fetch(url, { ...options, headers });
    } catch (err) {
      throw new ApiError(0, { error: `the service did not answer (${err.message})` });
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.ok) return body;
    if (response.status !== 401) throw new ApiError(response.status, body);
    if (savedKey() !== key) continue; // a key was given meanwhile: try with it
    if (key) forgetKey();
    if (!(await askKey(Boolean(key)))) throw new ApiError(response.status, body);
  }
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
