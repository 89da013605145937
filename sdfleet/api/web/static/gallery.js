// The gallery: your jobs and their images, filtered by status and model, paged.

import { api, confirmAction, h, listAll, Pager, showError, formatTime } from "./api.js";
import { jobLabel } from "./jobcard.js";

const $ = (id) => document.getElementById(id);
const grid = $("gallery");
const ACTIVE = new Set(["queued", "running"]);

const pager = new Pager((cursor) => {
  const params = new URLSearchParams({ limit: $("page-size").value });
  if ($("filter-status").value) params.set("status", $("filter-status").value);
  if (cursor) params.set("cursor", cursor);
  return api(`/inferences?${params}`);
});

function open(job, output) {
  $("viewer-img").src = output.url;
  $("viewer-img").alt = job.prompt || "output";
  const p = job.params || {};
  $("viewer-params").textContent = [job.prompt, p.negative_prompt && `Negative: ${p.negative_prompt}`,
    `Model: ${job.model}`, `Seed: ${job.seed}`, p.steps && `Steps: ${p.steps}`, p.sampler_name,
    p.width && `${p.width}×${p.height}`].filter(Boolean).join(" · ");
  $("viewer").showModal();
}

function card(job) {
  const first = job.outputs[0];
  const thumb = first
    ? h("button", { class: "thumb ghost", type: "button", "aria-label": `Open ${job.prompt || "image"} full size`,
                    onclick: () => open(job, first) }, h("img", { src: `${first.url}/thumbnail`, alt: jobLabel(job), loading: "lazy" }))
    : h("div", { class: "thumb" }, job.status === "running" ? `${Math.round(job.progress.fraction * 100)} %` : job.status);
  const actions = h("div", { class: "actions-line" });
  for (const o of job.outputs) {
    actions.append(h("a", { class: "button small", href: o.url, download: `${job.id}-${o.index}.png` },
      job.outputs.length > 1 ? `Download ${o.index + 1}` : "Download"));
  }
  if (ACTIVE.has(job.status)) {
    actions.append(h("button", { class: "small danger", type: "button", "data-role": "cancel", onclick: async () => {
      try { await api(`/inferences/${job.id}/cancel`, { method: "POST" }); setTimeout(refresh, 500); } catch (err) { showError(err); }
    } }, "Cancel"));
  } else {
    actions.append(h("button", { class: "small danger", type: "button", "data-role": "delete", onclick: async () => {
      if (!await confirmAction("Delete this job and its images?", { ok: "Delete", danger: true })) return;
      try { await api(`/inferences/${job.id}`, { method: "DELETE" }); refresh(); } catch (err) { showError(err); }
    } }, "Delete"));
  }
  return h("article", { class: "card", "data-job-id": job.id, "data-status": job.status },
    thumb,
    h("div", { class: "body" },
      h("div", {}, h("span", { class: `badge ${job.status}` }, job.status), " ",
        h("span", { class: "muted" }, formatTime(job.queued_at))),
      h("div", { class: "prompt", title: job.prompt || "" }, jobLabel(job)),
      h("div", { class: "muted" }, job.model || ""),
      actions));
}

function render(page) {
  const model = $("filter-model").value;
  const items = page.items.filter((j) => !model || j.model === model);
  grid.replaceChildren(...items.map(card));
  const filtered = Boolean($("filter-status").value || model);
  $("gallery-empty").hidden = items.length > 0 || filtered;
  $("gallery-no-match").hidden = items.length > 0 || !filtered;
  $("prev").disabled = !pager.hasPrev;
  $("next").disabled = !pager.next;
  if (page.items.some((j) => ACTIVE.has(j.status))) {
    clearTimeout(render.timer);
    render.timer = setTimeout(refresh, 2000);
  }
}

async function refresh() { try { render(await pager.reload()); } catch (err) { showError(err); } }
async function first() { try { render(await pager.first()); } catch (err) { showError(err); } }

$("filter-status").addEventListener("change", first);
$("filter-model").addEventListener("change", first);
$("page-size").addEventListener("change", first);
$("prev").addEventListener("click", async () => { try { render(await pager.back()); } catch (err) { showError(err); } });
$("next").addEventListener("click", async () => { try { render(await pager.forward()); } catch (err) { showError(err); } });
listAll("/checkpoints?type=Stable-diffusion").then((models) => {
  $("filter-model").append(...models.map((m) => h("option", { value: m.name }, m.name)));
}).catch(() => {});
first();
