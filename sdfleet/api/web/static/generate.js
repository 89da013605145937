// The generate page: txt2img / img2img / inpaint form, the job queue with live progress.

import { api, h, listAll, showError, toast } from "./api.js";
import { jobCard } from "./jobcard.js";
import { MaskPainter } from "./mask.js";

const $ = (id) => document.getElementById(id);
const form = $("gen-form");
const jobs = $("jobs");
const initImg = $("init-preview");
const painter = new MaskPainter($("mask-canvas"), initImg, { brushSize: () => Number($("brush").value) });
let initDataUrl = null;
let lastSeed = null;

function mode() { return form.querySelector("input[name=mode]:checked").value; }

function syncMode() {
  const m = mode();
  $("init-section").hidden = m === "txt2img";
  $("mask-tools").hidden = m !== "inpaint" || !initDataUrl;
  $("mask-canvas").hidden = m !== "inpaint";
}

function bindOutput(inputId, outputId) {
  const update = () => { $(outputId).value = $(inputId).value; };
  $(inputId).addEventListener("input", update);
  update();
}

async function loadModels() {
  try {
    const models = await listAll("/checkpoints?type=Stable-diffusion&status=active");
    const select = $("model");
    select.replaceChildren(...models.map((m) => h("option", { value: m.name }, `${m.name} [${m.short_hash}]`)));
    if (!models.length) select.append(h("option", { value: "" }, "No models yet"));
    const loras = await listAll("/checkpoints?type=Lora&status=active");
    if (loras.length) {
      $("lora").replaceChildren(...loras.map((m) => h("option", { value: m.name.replace(/\.[^.]+$/, "") }, m.name)));
    }
  } catch (err) { showError(err); }
  if (document.body.dataset.endpointsApi !== "yes") return;
  try {
    const page = await api("/endpoints");
    const names = (page.items || []).map((e) => e.name).filter(Boolean);
    if (names.length) $("endpoint").replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  } catch { /* endpoints are not managed here (or not visible to this user): keep "default" */ }
}

function insertLora() {
  const name = $("lora").value;
  if (!name) return;
  const tag = `<lora:${name}:${Number($("lora-weight").value)}>`;
  const prompt = $("prompt");
  const at = prompt.selectionStart ?? prompt.value.length;
  const before = prompt.value.slice(0, at);
  const sep = before && !/\s$/.test(before) ? " " : "";
  prompt.value = `${before}${sep}${tag}${prompt.value.slice(at)}`;
  prompt.focus();
}

function fileToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

async function setInitImage(blob) {
  initDataUrl = await fileToDataUrl(blob);
  await new Promise((resolve) => { initImg.onload = resolve; initImg.src = initDataUrl; });
  painter.reset();
  $("stage").hidden = false;
  $("width").value = Math.max(64, Math.floor(initImg.naturalWidth / 8) * 8);
  $("height").value = Math.max(64, Math.floor(initImg.naturalHeight / 8) * 8);
  syncMode();
}

function numberField(id) { return Number($(id).value); }

function buildRequest() {
  const m = mode();
  const params = {
    prompt: $("prompt").value, negative_prompt: $("negative_prompt").value, sampler_name: $("sampler").value,
    steps: numberField("steps"), cfg_scale: numberField("cfg_scale"), width: numberField("width"),
    height: numberField("height"), seed: numberField("seed"), batch_size: numberField("batch_size"),
    n_iter: numberField("n_iter"), override_settings: { sd_model_checkpoint: $("model").value },
  };
  if ($("scheduler").value !== "Automatic") params.scheduler = $("scheduler").value;
  if (m !== "txt2img") {
    if (!initDataUrl) throw new Error("Choose an input image first");
    params.init_images = [initDataUrl];
    params.denoising_strength = numberField("denoising_strength");
  }
  if (m === "inpaint") {
    if (!painter.painted) throw new Error("Paint the area to repaint on the image first");
    params.mask = painter.toDataURL();
  }
  return { task: m === "txt2img" ? "txt2img" : "img2img", params, endpoint: $("endpoint").value || null };
}

function addCard(job) {
  jobs.querySelector(".empty")?.remove();
  const card = jobCard(job, { onReuse: reuseParameters, onSendToImg2img: sendToImg2img });
  jobs.prepend(card);
  return card;
}

async function submit(event) {
  event.preventDefault();
  let request;
  try { request = buildRequest(); } catch (err) { showError(err); return; }
  const button = $("generate");
  button.disabled = true;
  try {
    const accepted = await api("/inferences", { method: "POST", json: request });
    const job = await api(`/inferences/${accepted.id}`);
    lastSeed = job.seed;
    addCard(job);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

function setSelect(id, value) {
  const select = $(id);
  if (value === undefined || value === null) return;
  if (![...select.options].some((o) => o.value === String(value))) select.append(h("option", { value }, value));
  select.value = String(value);
}

/** Put a job's parameters back in the form. */
function reuseParameters(job) {
  const p = job.params || {};
  $("prompt").value = p.prompt ?? job.prompt ?? "";
  $("negative_prompt").value = p.negative_prompt ?? "";
  for (const id of ["steps", "cfg_scale", "width", "height", "batch_size", "n_iter"]) {
    if (p[id] !== undefined) { $(id).value = p[id]; $(id).dispatchEvent(new Event("input")); }
  }
  if (p.denoising_strength !== undefined) { $("denoising_strength").value = p.denoising_strength; }
  $("seed").value = job.seed ?? p.seed ?? -1;
  setSelect("sampler", p.sampler_name);
  if (job.model) setSelect("model", job.model);
  if (job.endpoint) setSelect("endpoint", job.endpoint);
  toast("Parameters loaded into the form");
  $("prompt").focus();
}

async function sendToImg2img(url, job) {
  try {
    const blob = await (await api(url.replace(/^\/api\/v1/, ""), { raw: true })).blob();
    $("mode-img2img").checked = true;
    await setInitImage(blob);
    if (job) reuseParameters(job);
    $("mode-img2img").checked = true;
    syncMode();
    toast("Image sent to img2img");
  } catch (err) { showError(err); }
}

async function loadRecent() {
  try {
    const page = await api("/inferences?limit=8");
    const items = page.items.filter((j) => j.source !== "comfy");
    if (items.length && items[0].seed !== null) lastSeed = items[0].seed;
    for (const job of items.reverse()) addCard(job);
  } catch (err) { showError(err); }
}

bindOutput("steps", "steps-out");
bindOutput("cfg_scale", "cfg-out");
bindOutput("denoising_strength", "denoise-out");
bindOutput("brush", "brush-out");
form.addEventListener("change", (e) => { if (e.target.name === "mode") syncMode(); });
form.addEventListener("submit", submit);
$("lora-insert").addEventListener("click", insertLora);
$("seed-random").addEventListener("click", () => { $("seed").value = -1; });
$("seed-reuse").addEventListener("click", () => {
  if (lastSeed === null) { toast("No seed to reuse yet"); return; }
  $("seed").value = lastSeed;
});
$("init-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (file) { try { await setInitImage(file); } catch (err) { showError(err); } }
});
$("mask-clear").addEventListener("click", () => painter.clear());
syncMode();
loadModels();
loadRecent();
