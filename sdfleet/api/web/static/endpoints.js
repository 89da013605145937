// Endpoints: replicas and their states, loaded models, create, scale, delete, recent autoscaler events.
// The page refreshes every 5 s in place: a field being edited, focus and open event lists are left alone.

import { api, confirmAction, formatTime, h, listAll, showError, toast } from "./api.js";

const $ = (id) => document.getElementById(id);
const list = (value) => value.split(",").map((v) => v.trim()).filter(Boolean);
const panels = new Map();
let modelNames = new Map();

/** An autoscaler or fleet event in words. */
export function describeEvent(e) {
  const d = e.data || {};
  switch (e.type) {
    case "scale": return `Scaled from ${d.from} to ${d.to} replica(s)${d.reason ? `: ${d.reason}` : ""} (${d.queued ?? 0} queued, ${d.running ?? 0} running)`;
    case "status": return `Status changed from ${d.from} to ${d.to}`;
    case "failed": return `Failed: ${d.reason}`;
    case "replica_started": return `Started replica ${d.replica}${d.device ? ` on ${d.device}` : ""}`;
    case "replica_stopped": return `Replica ${d.replica} stopped`;
    case "replica_restarted": return `Restarted replica ${d.replica} (${d.reason}; restart ${d.restarts})`;
    case "replica_pending": return `Replica ${d.replica} waiting ${d.seconds} s for resources ${JSON.stringify(d.resources || {})}: ${d.reason}`;
    case "replica_draining": return `Draining replica ${d.replica}`;
    case "jobs_cancelled": return `Cancelled ${d.count} queued job(s)`;
    default: {
      const details = Object.entries(d).map(([k, v]) => `${k.replaceAll("_", " ")}: ${typeof v === "object" ? JSON.stringify(v) : v}`);
      return `${e.type.replaceAll("_", " ")}${details.length ? ` (${details.join(", ")})` : ""}`;
    }
  }
}

function modelName(sha256) {
  return modelNames.get(sha256) || `${sha256.slice(0, 10)}…`;
}

function numberInput(id, value) {
  const input = h("input", { type: "number", min: 0, max: 64, value, id });
  input.addEventListener("input", () => { input.dataset.dirty = "yes"; });
  return input;
}

/** Set an input from fresh data unless the user is editing it. */
function refreshInput(input, value) {
  if (input.dataset.dirty || document.activeElement === input) return;
  input.value = String(value);
}

async function scale(ep, panel) {
  try {
    await api(`/endpoints/${ep.name}`, { method: "PATCH",
      json: { min_replicas: Number(panel.min.value), max_replicas: Number(panel.max.value) } });
    delete panel.min.dataset.dirty;
    delete panel.max.dataset.dirty;
    toast(`Scaled ${ep.name}`);
    load();
  } catch (err) { showError(err); }
}

async function remove(ep) {
  if (!await confirmAction(`Drain and delete ${ep.name}?`, { ok: "Delete", danger: true })) return;
  try { await api(`/endpoints/${ep.name}`, { method: "DELETE" }); toast(`Deleting ${ep.name}`); load(); } catch (err) { showError(err); }
}

function createPanel(ep) {
  const panel = {
    min: numberInput(`min-${ep.name}`, ep.min_replicas),
    max: numberInput(`max-${ep.name}`, ep.max_replicas),
    badge: h("span", { class: "badge" }),
    summary: h("span", { class: "muted" }),
    reason: h("p", { class: "muted" }),
    replicas: h("tbody"),
    events: h("ul", { class: "events" }),
  };
  panel.details = h("details", { hidden: true }, h("summary", {}, "Recent autoscaler events"), panel.events);
  panel.el = h("section", { class: "panel", "data-endpoint": ep.name, "aria-label": `Endpoint ${ep.name}` },
    h("div", { class: "results-head" }, h("h2", {}, ep.name, " ", panel.badge), panel.summary),
    panel.reason,
    h("div", { class: "toolbar" },
      h("div", {}, h("label", { for: panel.min.id }, "Min replicas"), panel.min),
      h("div", {}, h("label", { for: panel.max.id }, "Max replicas"), panel.max),
      h("button", { type: "button", onclick: () => scale(ep, panel) }, "Scale"),
      h("button", { type: "button", class: "danger", onclick: () => remove(ep) }, "Delete")),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ...["Replica", "State", "Device", "Loaded models", "Last seen"].map((t) => h("th", {}, t)))),
      panel.replicas)),
    panel.details);
  return panel;
}

function updatePanel(panel, ep, events) {
  panel.badge.className = `badge ${ep.status}`;
  panel.badge.textContent = ep.status;
  panel.summary.textContent = `${ep.replicas.length} replica(s), wants ${ep.desired_replicas} · devices ${ep.devices.join(", ")} · roles ${ep.allowed_roles.join(", ")}`;
  panel.reason.textContent = ep.reason || "";
  panel.reason.hidden = !ep.reason;
  refreshInput(panel.min, ep.min_replicas);
  refreshInput(panel.max, ep.max_replicas);
  panel.replicas.replaceChildren(...(ep.replicas.length
    ? ep.replicas.map((r) => h("tr", {}, h("td", {}, r.name), h("td", {}, h("span", { class: `badge ${r.status}` }, r.status)),
        h("td", {}, r.device || ""),
        h("td", { "data-role": "loaded-models" }, r.loaded_models.map(modelName).join(", ")),
        h("td", {}, formatTime(r.last_seen_at))))
    : [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No replicas (scaled to zero)."))]));
  panel.details.hidden = !events.length;
  panel.events.replaceChildren(...events.map((e) => h("li", {}, h("time", { datetime: e.created_at }, formatTime(e.created_at)),
    " — ", describeEvent(e))));
}

async function load() {
  try {
    const page = { items: await listAll("/endpoints") };
    const seen = new Set();
    const container = $("endpoints");
    for (const [i, ep] of page.items.entries()) {
      seen.add(ep.name);
      let events = [];
      try { events = (await api(`/endpoints/${ep.name}/events?limit=500`)).items.slice(-8).reverse(); } catch { /* optional */ }
      let panel = panels.get(ep.name);
      if (!panel) { panel = createPanel(ep); panels.set(ep.name, panel); }
      updatePanel(panel, ep, events);
      // Keep the server's order, moving a panel only when it is out of place (a move would drop focus).
      if (container.children[i] !== panel.el) container.insertBefore(panel.el, container.children[i] || null);
    }
    for (const [name, panel] of panels) if (!seen.has(name)) { panel.el.remove(); panels.delete(name); }
    container.dataset.refreshed = String(Number(container.dataset.refreshed || 0) + 1);
  } catch (err) { showError(err); }
}

$("endpoint-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await api("/endpoints", { method: "POST", json: { name: $("ep-name").value, devices: list($("ep-devices").value),
      min_replicas: Number($("ep-min").value), max_replicas: Number($("ep-max").value), allowed_roles: list($("ep-roles").value) } });
    toast(`Created ${$("ep-name").value}`);
    e.target.reset();
    load();
  } catch (err) { showError(err); }
});

listAll("/checkpoints").then((models) => { modelNames = new Map(models.map((m) => [m.sha256, m.name])); })
  .catch(() => {}).finally(() => { load(); setInterval(load, 5000); });
