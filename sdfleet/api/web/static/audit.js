// The audit log tab (admins): filters, newest first, cursor paging through GET /api/v1/audit.

import { api, h, Pager, showError, formatTime } from "./api.js";

const $ = (id) => document.getElementById(id);
const PAGE = 25;

function query(cursor) {
  const params = new URLSearchParams({ limit: String(PAGE) });
  for (const name of ["actor", "action", "target"]) {
    const value = $(`audit-${name}`).value.trim();
    if (value) params.set(name, value);
  }
  for (const name of ["since", "until"]) {
    const value = $(`audit-${name}`).value;  // local time, sent with its offset as UTC
    if (value) params.set(name, new Date(value).toISOString());
  }
  if (cursor) params.set("cursor", cursor);
  return params.toString();
}

const events = new Pager((cursor) => api(`/audit?${query(cursor)}`));

function show(value) {
  if (value === null || value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function changes(event) {
  const lines = Object.entries(event.changes).map(([field, change]) => h("div", {},
    h("span", { class: "mono" }, field), ": ",
    "changed" in change ? "changed" : `${show(change.before)} → ${show(change.after)}`));
  const details = Object.keys(event.details).length
    ? h("div", { class: "muted mono" }, JSON.stringify(event.details)) : null;
  return [...lines, details];
}

function row(event) {
  const actor = event.actor_name ?? (event.credential ? "unknown" : "operator (CLI)");
  const target = event.target.name || event.target.id || "";
  return h("tr", { "data-audit-action": event.action },
    h("td", {}, h("time", { datetime: event.at }, formatTime(event.at))),
    h("td", {}, actor, event.credential ? h("span", { class: "muted" }, ` (${event.credential})`) : null),
    h("td", { class: "mono" }, event.action),
    h("td", {}, h("span", { class: "muted" }, `${event.target.kind} `), target),
    h("td", {}, changes(event)),
    h("td", { class: "mono" }, event.address || ""));
}

async function render(step) {
  try {
    const page = await step();
    if (!page) return;
    $("audit-events").replaceChildren(...page.items.map(row));
    if (!page.items.length) $("audit-events").append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No events match.")));
    $("audit-prev").disabled = !events.hasPrev;
    $("audit-next").disabled = !events.next;
  } catch (err) { showError(err); }
}

$("audit-form").addEventListener("submit", (e) => { e.preventDefault(); render(() => events.first()); });
$("audit-form").addEventListener("reset", () => setTimeout(() => render(() => events.first())));
$("audit-prev").addEventListener("click", () => render(() => events.back()));
$("audit-next").addEventListener("click", () => render(() => events.forward()));
$("tab-audit").addEventListener("click", () => render(() => events.first()), { once: true });
