// Endpoints: replicas and their states, loaded models, create, scale, delete, recent autoscaler events.

import { api, formatTime, h, showError, toast } from "./api.js";

const $ = (id) => document.getElementById(id);
const list = (value) => value.split(",").map((v) => v.trim()).filter(Boolean);

async function scale(ep, minInput, maxInput) {
  try {
    await api(`/endpoints/${ep.name}`, { method: "PATCH",
      json: { min_replicas: Number(minInput.value), max_replicas: Number(maxInput.value) } });
    toast(`Scaled ${ep.name}`);
    load();
  } catch (err) { showError(err); }
}

async function remove(ep) {
  if (!confirm(`Drain and delete ${ep.name}?`)) return;
  try { await api(`/endpoints/${ep.name}`, { method: "DELETE" }); toast(`Deleting ${ep.name}`); load(); } catch (err) { showError(err); }
}

async function panel(ep) {
  const minInput = h("input", { type: "number", min: 0, max: 64, value: ep.min_replicas, id: `min-${ep.name}` });
  const maxInput = h("input", { type: "number", min: 0, max: 64, value: ep.max_replicas, id: `max-${ep.name}` });
  let events = [];
  try { events = (await api(`/endpoints/${ep.name}/events?limit=500`)).items.slice(-8).reverse(); } catch { /* optional */ }
  return h("section", { class: "panel", "data-endpoint": ep.name, "aria-label": `Endpoint ${ep.name}` },
    h("div", { class: "results-head" },
      h("h2", {}, ep.name, " ", h("span", { class: `badge ${ep.status}` }, ep.status)),
      h("span", { class: "muted" }, `${ep.replicas.length} replica(s), wants ${ep.desired_replicas} · devices ${ep.devices.join(", ")} · roles ${ep.allowed_roles.join(", ")}`)),
    ep.reason && h("p", { class: "muted" }, ep.reason),
    h("div", { class: "toolbar" },
      h("div", {}, h("label", { for: minInput.id }, "Min replicas"), minInput),
      h("div", {}, h("label", { for: maxInput.id }, "Max replicas"), maxInput),
      h("button", { type: "button", onclick: () => scale(ep, minInput, maxInput) }, "Scale"),
      h("button", { type: "button", class: "danger", onclick: () => remove(ep) }, "Delete")),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ...["Replica", "State", "Device", "Loaded models", "Last seen"].map((t) => h("th", {}, t)))),
      h("tbody", {}, ep.replicas.length
        ? ep.replicas.map((r) => h("tr", {}, h("td", {}, r.name), h("td", {}, h("span", { class: `badge ${r.status}` }, r.status)),
            h("td", {}, r.device || ""), h("td", { class: "mono" }, r.loaded_models.map((m) => m.slice(0, 10)).join(", ")),
            h("td", {}, formatTime(r.last_seen_at))))
        : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No replicas (scaled to zero)."))))),
    events.length && h("details", {}, h("summary", {}, "Recent autoscaler events"),
      h("ul", {}, events.map((e) => h("li", {}, `${formatTime(e.created_at)} — ${e.type} ${JSON.stringify(e.data)}`)))));
}

async function load() {
  try {
    const page = await api("/endpoints");
    $("endpoints").replaceChildren(...await Promise.all(page.items.map(panel)));
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
load();
setInterval(load, 5000);
