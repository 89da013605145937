// Notifications tab of the settings page: e-mail addresses, webhooks, the delivery log, job webhooks.

import { api, h, listAll, Pager, showError, toast, formatTime } from "./api.js";

const $ = (id) => document.getElementById(id);
const BASE = "/notifications";
const LOG_PAGE = 20;

// 1. Event choices (the same list for both forms)
let eventTypes = [];
function eventBoxes(container, prefix) {
  const legend = container.querySelector("legend");
  container.replaceChildren(legend, ...eventTypes.map((type) => {
    const id = `${prefix}-${type.replace(/[^a-z0-9]/gi, "-")}`;
    return h("label", { for: id }, h("input", { type: "checkbox", id, value: type }), type);
  }));
}
const chosen = (container) => [...container.querySelectorAll("input:checked")].map((i) => i.value);
const eventsText = (events) => (events.length ? events.join(", ") : "all");

// 2. Lists
function actions(sub) {
  const buttons = [];
  const act = (label, fn, cls = "small") => buttons.push(h("button", { type: "button", class: cls, onclick: async () => {
    try { await fn(); } catch (err) { showError(err); }
  } }, label));
  if (sub.status === "active") act("Send test", async () => {
    await api(`${BASE}/subscriptions/${sub.id}/test`, { method: "POST" });
    toast("Test event queued"); showLog(sub);
  });
  if (sub.status === "pending") act("Resend link", async () => {
    await api(`${BASE}/subscriptions/${sub.id}/resend-confirmation`, { method: "POST" }); toast("Confirmation link sent");
  });
  if (sub.status === "active") act("Disable", () => patch(sub, { enabled: false }));
  if (sub.status === "disabled" && sub.confirmed_at) act("Enable", () => patch(sub, { enabled: true }));
  if (sub.channel === "webhook") act("Rotate secret", async () => {
    if (!confirm("Replace the signing secret? The old one stops at once.")) return;
    const updated = await api(`${BASE}/subscriptions/${sub.id}/rotate-secret`, { method: "POST" });
    showSecret(updated.secret);
  });
  act("Log", async () => showLog(sub));
  act("Delete", async () => {
    if (!confirm(`Delete ${sub.address || sub.url} and its delivery log?`)) return;
    await api(`${BASE}/subscriptions/${sub.id}`, { method: "DELETE" }); toast("Deleted"); load();
  }, "small danger");
  return h("td", { class: "actions" }, buttons);
}

async function patch(sub, body) {
  await api(`${BASE}/subscriptions/${sub.id}`, { method: "PATCH", json: body });
  load();
}

function stateCell(sub) {
  const label = sub.status === "pending" ? "awaiting confirmation" : sub.status;
  return h("td", {}, h("span", { class: `badge ${sub.status === "active" ? "succeeded" : sub.status === "disabled" ? "failed" : "queued"}`,
    title: sub.disabled_reason || "" }, label), sub.disabled_reason ? h("div", { class: "hint" }, sub.disabled_reason) : null);
}

async function load() {
  try {
    const subs = await listAll(`${BASE}/subscriptions`);
    const mails = subs.filter((s) => s.channel === "email");
    const hooks = subs.filter((s) => s.channel === "webhook");
    $("mail-list").replaceChildren(...mails.map((s) => h("tr", { "data-subscription": s.id },
      h("td", {}, s.address), stateCell(s), h("td", {}, eventsText(s.events)),
      h("td", {}, s.min_duration_seconds ? `${s.min_duration_seconds} s` : "any"), actions(s))));
    if (!mails.length) $("mail-list").append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No addresses yet.")));
    $("hook-list").replaceChildren(...hooks.map((s) => h("tr", { "data-subscription": s.id },
      h("td", { class: "mono" }, s.url), h("td", {}, s.scope === "endpoint" ? `endpoint ${s.endpoint}` : s.scope),
      stateCell(s), h("td", {}, eventsText(s.events)), h("td", {}, String(s.consecutive_failures)), actions(s))));
    if (!hooks.length) $("hook-list").append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No webhooks yet.")));
  } catch (err) { showError(err); }
}

// 3. Forms
$("mail-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await api(`${BASE}/subscriptions`, { method: "POST", json: { channel: "email", address: $("mail-address").value,
      events: chosen($("mail-events")), min_duration_seconds: Number($("mail-min").value || 0) } });
    toast(`Confirmation link sent to ${$("mail-address").value}`);
    $("mail-address").value = "";
    load();
  } catch (err) { showError(err); }
});

$("hook-scope").addEventListener("change", () => { $("hook-endpoint-field").hidden = $("hook-scope").value !== "endpoint"; });

function showSecret(secret) {
  $("hook-secret-value").textContent = secret;
  $("hook-created").hidden = false;
}

$("hook-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = { channel: "webhook", url: $("hook-url").value, scope: $("hook-scope").value,
    events: chosen($("hook-events")), min_duration_seconds: Number($("hook-min").value || 0) };
  if ($("hook-secret").value) body.secret = $("hook-secret").value;
  if (body.scope === "endpoint") body.endpoint = $("hook-endpoint").value;
  try {
    const created = await api(`${BASE}/subscriptions`, { method: "POST", json: body });
    showSecret(created.secret);
    $("hook-url").value = ""; $("hook-secret").value = "";
    load();
  } catch (err) { showError(err); }
});

// 4. Delivery log
let logPager = null;
function showLog(sub, title) {
  const path = sub ? `${BASE}/subscriptions/${sub.id}/deliveries` : `${BASE}/job-webhook/deliveries`;
  $("log-title").textContent = title || `Deliveries to ${sub.address || sub.url}, newest first`;
  logPager = new Pager((cursor) => api(`${path}?limit=${LOG_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`));
  logPager.first().then(renderLog).catch(showError);
}

function renderLog(page) {
  $("log-list").replaceChildren(...page.items.map((d) => h("tr", { "data-delivery": d.id },
    h("td", {}, formatTime(d.created_at)), h("td", {}, d.event_type),
    h("td", {}, h("span", { class: `badge ${d.status === "pending" ? "queued" : d.status}` }, d.status)),
    h("td", {}, d.last_status_code ?? ""), h("td", {}, d.last_latency_ms != null ? `${d.last_latency_ms} ms` : ""),
    h("td", {}, String(d.attempts)), h("td", {}, d.next_attempt_at ? formatTime(d.next_attempt_at) : ""),
    h("td", { class: "hint" }, d.last_error || ""),
    h("td", {}, h("button", { type: "button", class: "small", onclick: async () => {
      try { await api(`${BASE}/deliveries/${d.id}/redeliver`, { method: "POST" }); toast("Queued again"); logPager.reload().then(renderLog); }
      catch (err) { showError(err); }
    } }, "Redeliver")))));
  if (!page.items.length) $("log-list").append(h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No deliveries yet.")));
  $("log-prev").disabled = !logPager.hasPrev;
  $("log-next").disabled = !logPager.next;
}
$("log-prev").addEventListener("click", () => logPager && logPager.back().then(renderLog).catch(showError));
$("log-next").addEventListener("click", () => logPager && logPager.forward().then(renderLog).catch(showError));
$("log-refresh").addEventListener("click", () => logPager && logPager.reload().then(renderLog).catch(showError));

// 5. Job webhooks
async function loadJobSecret(rotate = false) {
  try {
    const r = await api(`${BASE}/job-webhook${rotate ? "/rotate-secret" : ""}`, { method: rotate ? "POST" : "GET" });
    $("job-secret").textContent = r.secret;
  } catch (err) { showError(err); }
}
$("job-secret-rotate").addEventListener("click", () => { if (confirm("Replace the job webhook secret?")) loadJobSecret(true); });
$("job-log").addEventListener("click", () => showLog(null, "Deliveries of your jobs' one-off webhooks, newest first"));

// 6. Start when the tab is first opened (or the page is opened at #notifications)
let started = false;
async function start() {
  if (started) return;
  started = true;
  try { eventTypes = (await api(`${BASE}/event-types`)).items; } catch (err) { showError(err); }
  eventBoxes($("mail-events"), "mail-ev");
  eventBoxes($("hook-events"), "hook-ev");
  load();
  loadJobSecret();
}
$("tab-notifications").addEventListener("click", start);
if (location.hash === "#notifications") $("tab-notifications").click();
