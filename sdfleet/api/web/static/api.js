// Calls to /api/v1 with the session cookie and the CSRF header; toasts for errors.

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)sdfleet_csrf=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export class ApiError extends Error {
  constructor(status, body) {
    const err = body && body.error ? body.error : {};
    super(err.message || `request failed (${status})`);
    this.status = status;
    this.code = err.code || "error";
    this.details = err.details || {};
  }
}

/** fetch /api/v1{path} (or {base}{path}); JSON in and out; throws ApiError; a 401 sends the user to the login page. */
export async function api(path, { method = "GET", json, body, headers = {}, raw = false, base = "/api/v1" } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRF-Token"] = csrfToken();
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  const response = await fetch(`${base}${path}`, init);
  if (response.status === 401) {
    location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
    throw new ApiError(401, null);
  }
  if (!response.ok) {
    let data = null;
    try { data = await response.json(); } catch { /* not JSON */ }
    throw new ApiError(response.status, data);
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export function can(permission) {
  return document.body.dataset.permissions.split(" ").includes(permission);
}

export function toast(message, { error = false } = {}) {
  const box = document.getElementById("toasts");
  const item = document.createElement("div");
  item.className = error ? "toast error" : "toast";
  item.textContent = message;
  box.append(item);
  setTimeout(() => item.remove(), error ? 8000 : 4000);
}

export function showError(err) {
  toast(err instanceof Error ? err.message : String(err), { error: true });
}

/** Build an element: h("button", {class: "small", onclick}, "Text"). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

/** Fetch every page of a list endpoint (small lists: models, roles). */
export async function listAll(path, { max = 500 } = {}) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(`${path}${sep}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

/** A paged table helper: keeps the cursor stack for previous/next. */
export class Pager {
  constructor(load) { this.load = load; this.stack = [null]; this.next = null; }
  async first() { this.stack = [null]; return this.#go(); }
  async forward() { if (this.next) { this.stack.push(this.next); return this.#go(); } }
  async back() { if (this.stack.length > 1) { this.stack.pop(); return this.#go(); } }
  async reload() { return this.#go(); }
  get hasPrev() { return this.stack.length > 1; }
  async #go() {
    const page = await this.load(this.stack[this.stack.length - 1]);
    this.next = page.next_cursor;
    return page;
  }
}

/** Ask in the page's own dialog; resolves true when the user confirms. */
export function confirmAction(message, { ok = "OK", danger = false } = {}) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-text").textContent = message;
  const button = document.getElementById("confirm-ok");
  button.textContent = ok;
  button.className = danger ? "danger" : "primary";
  dialog.returnValue = "";
  dialog.showModal();
  button.focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

let optionsPromise = null;
/** The server's sampler/schedule names and field limits (GET /generation/options), fetched once per page. */
export function generationOptions() {
  optionsPromise = optionsPromise || api("/generation/options");
  return optionsPromise;
}

/** Call `fn` once `ms` after the last call. */
export function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}
