// The Train page: datasets (thumbnails, caption editing, uploads), a training form, trainings with a live loss
// curve, samples, the evaluation grid and the resulting LoRA with a "try it" link to Generate.

import { api, formatBytes, h, listAll, showError, toast } from "./api.js";
import { fieldOfError, markField } from "./fields.js";
import { RolePicker } from "./roles.js";

const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const roles = new RolePicker($("t-roles"), "t-role");
let current = null; // the training shown below the table
let source = null; // its event stream
let losses = []; // [step, loss] of the training shown

// 1. Datasets

async function loadDatasets(select) {
  const datasets = await listAll("/datasets");
  const box = $("dataset-select");
  box.replaceChildren(...datasets.map((d) => h("option", { value: d.id }, `${d.name} (${d.image_count} images, ${d.resolution} px)`)));
  if (select) box.value = select;
  await showImages();
}

async function showImages() {
  const id = $("dataset-select").value;
  const list = $("dataset-images");
  if (!id) {
    list.replaceChildren();
    $("dataset-summary").textContent = "No dataset yet: create one, then add images.";
    return;
  }
  const [dataset, images] = await Promise.all([api(`/datasets/${id}`), listAll(`/datasets/${id}/images`)]);
  $("dataset-summary").textContent = `${dataset.image_count} images, ${formatBytes(dataset.total_bytes)}, ` +
    `${dataset.resolution} px, content hash ${dataset.content_hash.slice(0, 12)}`;
  list.replaceChildren(...images.map((image) => {
    const caption = h("input", { id: `caption-${image.id}`, value: image.caption, maxlength: "2000",
      "aria-label": `Caption of ${image.filename}` });
    caption.addEventListener("change", async () => {
      try {
        await api(`/datasets/${id}/images/${image.id}`, { method: "PATCH", json: { caption: caption.value } });
        markField(caption, "");
        toast(`Caption of ${image.filename} saved`);
      } catch (err) { markField(caption, err.message); }
    });
    return h("li", { "data-image-id": image.id },
      h("img", { src: `/api/v1/datasets/${id}/images/${image.id}/content?size=128`, alt: image.filename, loading: "lazy" }),
      h("span", { class: "muted small" }, `${image.filename} ×${image.repeats}`), caption);
  }));
}

$("dataset-select").addEventListener("change", () => showImages().catch(showError));

$("dataset-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const dataset = await api("/datasets", { method: "POST", json: {
      name: $("dataset-name").value.trim(), resolution: Number($("dataset-resolution").value) } });
    markField($("dataset-name"), "");
    toast(`Dataset ${dataset.name} created`);
    await loadDatasets(dataset.id);
  } catch (err) {
    const field = err.details && err.details.field === "resolution" ? $("dataset-resolution") : $("dataset-name");
    markField(field, err.message);
  }
});

$("images-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = $("dataset-select").value;
  const files = [...$("images-file").files];
  if (!id || !files.length) return;
  let added = 0;
  for (const file of files) {
    const body = new FormData();
    body.append("file", file, file.name);
    try {
      added += (await api(`/datasets/${id}/images`, { method: "POST", body })).items.length;
    } catch (err) { showError(new Error(`${file.name}: ${err.message}`)); }
  }
  $("images-file").value = "";
  toast(`${added} image(s) added`);
  await loadDatasets(id);
});

// 2. The training form

async function loadBaseModels() {
  const models = await listAll("/checkpoints?type=Stable-diffusion");
  $("t-base").replaceChildren(...models.map((m) => h("option", { value: m.name }, `${m.name} (${m.architecture})`)));
}

function trainingBody(form) {
  const body = { name: form.name.value.trim(), base_model: form.base_model.value, dataset_id: $("dataset-select").value };
  for (const input of form.querySelectorAll("input[type=number]")) {
    if (input.value !== "") body[input.name] = Number(input.value);
  }
  for (const input of form.querySelectorAll("select[name]:not(#t-base)")) body[input.name] = input.value;
  for (const input of form.querySelectorAll("input[type=checkbox][name]")) body[input.name] = input.checked;
  const prompts = $("t-prompts").value.split("\n").map((p) => p.trim()).filter(Boolean);
  if (prompts.length) body.samples = { prompts };
  body.allowed_roles = roles.value();
  return body;
}

$("train-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.target;
  for (const input of form.querySelectorAll("[aria-invalid]")) markField(input, "");
  const body = trainingBody(form);
  if (!body.allowed_roles) return;
  try {
    const job = await api("/trainings", { method: "POST", json: body });
    toast(`Training ${body.name} queued`);
    await loadTrainings();
    await show(job.id);
  } catch (err) {
    const field = fieldOfError(form, err) || (err.details && err.details.field === "dataset_id" ? $("dataset-select") : null);
    if (field) { markField(field, err.message); field.focus(); } else showError(err);
  }
});

// 3. Trainings

function lossText(t) {
  return t.progress.loss === null || t.progress.loss === undefined ? (t.info && t.info.final_loss !== undefined
    ? Number(t.info.final_loss).toFixed(4) : "") : t.progress.loss.toFixed(4);
}

async function loadTrainings() {
  const page = await api("/trainings?limit=20");
  $("trainings").replaceChildren(...page.items.map((t) => h("tr", { "data-id": t.id, class: current === t.id ? "selected" : null },
    h("td", {}, t.name), h("td", {}, h("span", { class: `badge ${t.status}` }, t.status)),
    h("td", {}, `${t.progress.step}/${t.progress.max_steps || "?"}`), h("td", {}, lossText(t)),
    h("td", {}, t.base_model), h("td", {}, t.dataset_name),
    h("td", { class: "actions" },
      h("button", { type: "button", class: "small", onclick: () => show(t.id).catch(showError) }, "View"),
      TERMINAL.has(t.status) ? null : h("button", { type: "button", class: "small danger", onclick: () => cancel(t.id) }, "Cancel")))));
  if (page.items.some((t) => !TERMINAL.has(t.status))) setTimeout(() => loadTrainings().catch(() => {}), 3000);
}

async function cancel(id) {
  try {
    await api(`/trainings/${id}/cancel`, { method: "POST" });
    toast("Cancelling: it stops at the next step and keeps its last checkpoint");
    await loadTrainings();
  } catch (err) { showError(err); }
}

function drawLoss() {
  const line = $("loss-line");
  if (!losses.length) { line.setAttribute("points", ""); return; }
  const steps = losses.map((p) => p[0]);
  const values = losses.map((p) => p[1]);
  const [s0, s1] = [Math.min(...steps), Math.max(...steps)];
  const [v0, v1] = [Math.min(...values), Math.max(...values)];
  const x = (s) => (s1 === s0 ? 200 : ((s - s0) / (s1 - s0)) * 396 + 2);
  const y = (v) => (v1 === v0 ? 60 : 118 - ((v - v0) / (v1 - v0)) * 116);
  line.setAttribute("points", losses.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
  $("loss-curve").dataset.points = String(losses.length);
}

function setProgress(step, max, text) {
  const pct = max ? Math.round((step / max) * 100) : 0;
  $("run").querySelector(".progress > div").style.width = `${pct}%`;
  $("run").querySelector("[role=progressbar]").setAttribute("aria-valuenow", String(pct));
  $("run-status").textContent = text;
}

function describe(step, max, m) {
  const parts = [`step ${step}/${max || "?"}`];
  if (m.loss !== undefined) parts.push(`loss ${m.loss.toFixed(4)}`);
  if (m.lr !== undefined) parts.push(`lr ${m.lr.toExponential(2)}`);
  if (m.steps_per_second) parts.push(`${m.steps_per_second.toFixed(2)} steps/s`);
  if (m.eta_seconds !== undefined) parts.push(`ETA ${Math.round(m.eta_seconds)} s`);
  return parts.join(" · ");
}

async function showResults(t) {
  const artifacts = await api(`/trainings/${t.id}/artifacts`);
  const url = (a) => `/api/v1/trainings/${t.id}/artifacts/${a.name}`;
  $("run-samples").replaceChildren(...artifacts.filter((a) => a.name.startsWith("samples/")).map((a) =>
    h("figure", {}, h("img", { src: url(a), alt: `sample at step ${a.step}` }), h("figcaption", { class: "muted small" }, `step ${a.step}`))));
  const grid = artifacts.find((a) => a.name === "grid.png");
  $("run-grid").replaceChildren(grid ? h("img", { src: url(grid), alt: "evaluation grid", id: "grid-image" }) : h("span", { class: "muted" }, "—"));
  const lora = $("run-lora");
  const checkpoint = artifacts.filter((a) => a.name.startsWith("checkpoints/")).pop();
  const partial = artifacts.find((a) => a.name === "lora.safetensors");
  if (t.lora) {
    const stem = t.lora.name.replace(/\.safetensors$/, "");
    const prompt = `<lora:${stem}:1> ${(t.parameters.samples && t.parameters.samples.prompts[0]) || ""}`.trim();
    lora.replaceChildren(`LoRA ${t.lora.name} (${t.lora.short_hash}) is in the registry. `,
      h("a", { href: `/?prompt=${encodeURIComponent(prompt)}`, id: "try-lora" }, "Try it in Generate"), " · ",
      h("a", { href: url({ name: "lora.safetensors" }), download: t.lora.name }, "Download"));
  } else if (t.status === "cancelled" || t.status === "failed") {
    lora.replaceChildren(...[checkpoint ? h("a", { href: url(checkpoint), download: "" }, `Last checkpoint (step ${checkpoint.step})`) : null,
      partial ? " · " : null, partial ? h("a", { href: url(partial), download: "" }, "LoRA so far") : null,
      t.error ? ` ${t.error.message}` : null].filter(Boolean));
  } else lora.replaceChildren();
}

async function show(id) {
  if (source) source.close();
  current = id;
  for (const row of $("trainings").querySelectorAll("tr")) row.classList.toggle("selected", row.dataset.id === id);
  const t = await api(`/trainings/${id}`);
  $("run").hidden = false;
  $("run-title").textContent = `${t.name} on ${t.base_model}`;
  losses = [];
  drawLoss();
  setProgress(t.progress.step, t.progress.max_steps, t.status);
  await showResults(t);
  if (TERMINAL.has(t.status)) {
    losses = (t.info && t.info.losses) || [];
    drawLoss();
    setProgress(t.progress.step, t.progress.max_steps, `${t.status}${t.error ? `: ${t.error.message}` : ""}`);
    return;
  }
  let refreshed = Date.now();
  source = new EventSource(`/api/v1/trainings/${id}/events`);
  source.addEventListener("progress", (e) => {
    const data = JSON.parse(e.data);
    const m = data.metrics || {};
    if (m.loss !== undefined) {
      losses = losses.filter((p) => p[0] < data.value).concat([[data.value, m.loss]]);
      drawLoss();
    }
    setProgress(data.value, data.max, describe(data.value, data.max, m));
    if (Date.now() - refreshed > 3000) { // new samples appear while it trains
      refreshed = Date.now();
      showResults({ ...t, status: "running" }).catch(() => {});
    }
  });
  source.addEventListener("requeued", () => { $("run-status").textContent = "requeued: resumes from its last checkpoint"; });
  for (const name of ["succeeded", "failed", "cancelled"]) {
    source.addEventListener(name, () => { source.close(); show(id).catch(showError); loadTrainings().catch(() => {}); });
  }
}

Promise.all([loadDatasets(), loadBaseModels(), roles.render(), loadTrainings()]).catch(showError);
