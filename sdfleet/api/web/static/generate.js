// The generate page: txt2img / img2img / inpaint form, the job queue with live progress.

import { api, debounce, generationOptions, h, listAll, showError, toast } from "./api.js";
import { applyLimits, checkField, fieldOfError, markField } from "./fields.js";
import { applyValues, checkForm, mode, readValues, setMode, snapSize } from "./genform.js";
import { jobCard, TERMINAL } from "./jobcard.js";
import { MaskPainter } from "./mask.js";
import { ModelPicker } from "./modelpicker.js";
import { valuesFromPngInfo } from "./pngparams.js";
import { setupPromptTools } from "./prompttools.js";
import { Viewer, viewerEntry } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const form = $("gen-form");
const jobs = $("jobs");
const initImg = $("init-preview");
const painter = new MaskPainter($("mask-canvas"), initImg, {
  brushSize: () => Number($("brush").value),
  tool: () => document.querySelector("input[name=mask-tool]:checked").value,
  onChange: () => { $("mask-undo").disabled = !painter.canUndo; },
});
const picker = new ModelPicker({ button: $("model-button"), title: $("model-title"), input: $("model"),
  dialog: $("model-dialog"), search: $("model-search"), list: $("model-list"),
  onChange: () => { showModelHint(); remember(); } });
let options = null;
let initDataUrl = null;
let lastSeed = null;
let restoring = false;

// 1. Mode, outputs of ranges, the input image
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

function fileToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

/** Use `blob` as the input image; `source` says where it came from (shown beside the chooser). */
async function setInitImage(blob, source, { keepSize = false } = {}) {
  initDataUrl = await fileToDataUrl(blob);
  await new Promise((resolve, reject) => { initImg.onload = resolve; initImg.onerror = reject; initImg.src = initDataUrl; });
  painter.reset();
  $("mask-undo").disabled = true;
  $("stage").hidden = false;
  $("init-source").textContent = `${source} · ${initImg.naturalWidth}×${initImg.naturalHeight}`;
  if (!keepSize) {
    $("width").value = Math.max(64, Math.floor(initImg.naturalWidth / 8) * 8);
    $("height").value = Math.max(64, Math.floor(initImg.naturalHeight / 8) * 8);
  }
  syncMode();
}

// 2. Choices from the server: limits, models (with their notes), LoRAs, endpoints, remembered settings
function showModelHint() {
  const model = picker.models.find((m) => m.name === picker.value);
  const words = model && model.trigger_words;
  $("model-hint").hidden = !words && !(model && model.notes);
  $("model-triggers").textContent = [words && `Trigger words: ${words}`, model && model.notes].filter(Boolean).join(" · ");
  $("model-triggers-insert").hidden = !words;
}

async function loadEndpoints() {
  if (document.body.dataset.endpointsApi !== "yes") return;
  try {
    const names = (await listAll("/endpoints")).map((e) => e.name).filter(Boolean);
    if (names.length) $("endpoint").replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  } catch { /* endpoints not visible to this user: keep "default" */ }
}

/** Everything the form needs, fetched at once; then the remembered settings go in. */
async function loadChoices() {
  const [loaded, models, loras, notes, prefs] = await Promise.all([
    generationOptions(), listAll("/checkpoints?type=Stable-diffusion&status=active"),
    listAll("/checkpoints?type=Lora&status=active"), api("/model-notes"), api("/me/preferences"), loadEndpoints()]);
  options = loaded;
  applyLimits(form, options.limits);
  const byId = new Map(notes.map((n) => [n.checkpoint_id, n]));
  picker.setModels(models.map((m) => ({ ...m, ...(byId.get(m.id) || {}) })));
  if (loras.length) $("lora").replaceChildren(...loras.map((m) => h("option", { value: m.name.replace(/\.[^.]+$/, "") }, m.name)));
  restoring = true;
  applyValues(prefs.generate || {}, { options, picker });
  restoring = false;
  showModelHint();
}

const remember = debounce(() => {
  if (restoring || !options) return;
  api("/me/preferences", { method: "PATCH", json: { generate: readValues() } }).catch(() => {});
}, 800);

// 3. Submitting
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

function buildRequest() {
  const m = mode();
  const num = (id) => Number($(id).value);
  const params = {
    prompt: $("prompt").value, negative_prompt: $("negative_prompt").value, sampler_name: $("sampler").value,
    steps: num("steps"), cfg_scale: num("cfg_scale"), width: num("width"), height: num("height"), seed: num("seed"),
    batch_size: num("batch_size"), n_iter: num("n_iter"), override_settings: { sd_model_checkpoint: picker.value },
  };
  if ($("scheduler").value !== "Automatic") params.scheduler = $("scheduler").value;
  if (m !== "txt2img") {
    if (!initDataUrl) { markField($("init-choose"), "Choose an input image first"); return null; }
    params.init_images = [initDataUrl];
    params.denoising_strength = num("denoising_strength");
  }
  if (m === "inpaint") {
    if (!painter.painted) { markField($("mask-canvas"), "Paint the area to repaint on the image first"); return null; }
    params.mask = painter.toDataURL();
    params.mask_blur = num("mask_blur");
    if ($("inpainting_mask_invert").checked) params.inpainting_mask_invert = 1;
    // A1111's UI paints the whole picture unless "Only masked" is chosen (its API defaults to only masked)
    params.inpaint_full_res = $("inpaint_full_res").checked;
    if (params.inpaint_full_res) params.inpaint_full_res_padding = num("inpaint_full_res_padding");
  }
  return { task: m === "txt2img" ? "txt2img" : "img2img", params, endpoint: $("endpoint").value || null };
}

const viewer = new Viewer({
  reuse: (job) => reuseParameters(job),
  img2img: (job, index) => sendTo(job, index, "img2img"),
  inpaint: (job, index) => sendTo(job, index, "inpaint"),
  deleted: (job) => jobs.querySelector(`article.job[data-job-id="${job.id}"]`)?.remove(),
});

function openViewer(job, index) {
  const shown = [...jobs.querySelectorAll("article.job")].map((c) => c.jobRecord)
    .filter((j) => j && j.outputs && j.outputs.length).map(viewerEntry);
  viewer.open(shown, Math.max(0, shown.findIndex((e) => e.job.id === job.id)), index);
}

function addCard(job, { reveal = false } = {}) {
  jobs.querySelector(".empty")?.remove();
  const card = jobCard(job, { onReuse: reuseParameters, onSendToImg2img: (j, index) => sendTo(j, index, "img2img"),
                              onOpen: openViewer });
  jobs.prepend(card);
  if (reveal) {
    const box = card.getBoundingClientRect();
    if (box.top < 0 || box.bottom > innerHeight) card.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }
  return card;
}

async function submit(event) {
  event?.preventDefault();
  if (!options || !checkForm(form, options)) return;
  markField($("init-choose"), "");
  markField($("mask-canvas"), "");
  const request = buildRequest();
  if (!request) return;
  const button = $("generate");
  button.disabled = true;
  try {
    const accepted = await api("/inferences", { method: "POST", json: request });
    const job = await api(`/inferences/${accepted.id}`);
    lastSeed = job.seed;
    addCard(job, { reveal: true });
  } catch (err) {
    const field = fieldOfError(form, err);
    if (field) { markField(field, err.message); field.focus(); } else showError(err);
  } finally {
    button.disabled = false;
  }
}

// 4. Reuse parameters, send to img2img, PNG in
async function blobOf(url) {
  return (await api(url.replace(/^\/api\/v1/, ""), { raw: true })).blob();
}

/** Put every parameter of a job back: mode, sampler, schedule, sizes, seed, batch, model, input image and mask. */
async function reuseParameters(job) {
  const p = job.params || {};
  restoring = true;
  try {
    applyValues({ ...p, seed: job.seed ?? p.seed, model: job.model, endpoint: job.endpoint }, { options, picker });
    let target = "txt2img";
    if (job.task === "img2img") {
      const inputs = await api(`/inferences/${job.id}/inputs`);
      const image = inputs.find((i) => i.kind === "image");
      const mask = inputs.find((i) => i.kind === "mask");
      target = mask ? "inpaint" : "img2img";
      if (image) await setInitImage(await blobOf(image.url), `Input of job ${job.id.slice(-6)}`, { keepSize: true });
      if (mask) await painter.load(await blobOf(mask.url));
    }
    setMode(target);
    syncMode();
  } catch (err) { showError(err); } finally { restoring = false; }
  remember();
  toast("Parameters loaded into the form");
  $("prompt").focus();
}

/** Use output `index` of a job as the input image of img2img or inpaint, with the job's parameters. */
async function sendTo(job, index, target, url = null) {
  try {
    const output = job.outputs.find((o) => o.index === index);
    const blob = await blobOf(url || output.url);
    restoring = true;
    applyValues({ ...(job.params || {}), seed: job.seed, model: job.model }, { options, picker });
    restoring = false;
    setMode(target);
    await setInitImage(blob, `Output ${index + 1} of job ${job.id.slice(-6)}`);
    toast(target === "inpaint" ? "Image sent to inpaint: paint the area to repaint" : "Image and parameters sent to img2img");
    $("init-section").scrollIntoView({ block: "nearest" });
  } catch (err) { showError(err); }
}

async function loadPngParameters(blob) {
  const info = await api("/png-info", { base: "/sdapi/v1", method: "POST", json: { image: await fileToDataUrl(blob) } })
    .catch(() => null);
  const values = info && valuesFromPngInfo(info);
  if (!values) return false;
  if (values.model_name) {
    const model = picker.models.find((m) => m.name === values.model_name || m.name.replace(/\.[^.]+$/, "") === values.model_name
      || (values.model_hash && m.short_hash.startsWith(values.model_hash.slice(0, 10))));
    if (model) values.model = model.name;
  }
  if (values.comfy_sampler) values.sampler_name = values.comfy_sampler;
  if (values.scheduler_label) values.scheduler = values.scheduler_label;
  else if (values.scheduler_value) values.scheduler = values.scheduler_value;
  applyValues(values, { options, picker });
  remember();
  toast("Parameters read from the PNG");
  return true;
}

async function takeImage(file, { asInput }) {
  if (!file || !file.type.startsWith("image/")) return;
  try {
    if (!asInput && file.type === "image/png" && await loadPngParameters(file)) return;
    if (mode() === "txt2img") setMode("img2img");
    await setInitImage(file, file.name || "Pasted image");
  } catch (err) { showError(err); }
}

// 5. Keyboard: Ctrl/Cmd+Enter generates, Enter in a field does not, Esc cancels the newest unfinished job
form.addEventListener("keydown", (e) => {
  if (e.key !== "Enter") return;
  if (e.ctrlKey || e.metaKey) { e.preventDefault(); submit(); return; }
  if (e.target.tagName === "INPUT" && e.target.type !== "checkbox" && e.target.type !== "radio") e.preventDefault();
});
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape" || document.querySelector("dialog[open]") || e.target.tagName === "SELECT") return;
  const newest = [...jobs.querySelectorAll("article.job")].find((c) => !TERMINAL.has(c.dataset.status));
  if (newest) { e.preventDefault(); newest.cancelJob(); }
});

// 6. Places in line of queued jobs, and what the gallery sends here (?reuse=, ?send=)
async function pollQueue() {
  const waiting = [...jobs.querySelectorAll('article.job[data-status="queued"]')];
  if (waiting.length) {
    try {
      const view = await api("/queue");
      const positions = new Map(view.items.map((e) => [e.id, e.position]));
      for (const card of waiting) card.setPosition(positions.get(card.dataset.jobId));
    } catch { /* positions are a hint */ }
  }
  setTimeout(pollQueue, waiting.length ? 2000 : 4000);
}

async function fromAddress() {
  const params = new URLSearchParams(location.search);
  if (params.get("prompt")) { // "try it" links (a trained LoRA on the Train page)
    form.prompt.value = params.get("prompt");
    history.replaceState(null, "", location.pathname);
    return;
  }
  const id = params.get("reuse") || params.get("send");
  if (!id) return;
  history.replaceState(null, "", location.pathname);
  const item = await api(`/gallery/${encodeURIComponent(id)}`);
  if (params.get("reuse")) await reuseParameters(item.job);
  else {
    const index = Number(params.get("index") || 0);
    const output = item.outputs.find((o) => o.index === index);
    await sendTo({ ...item.job, outputs: item.outputs }, index, params.get("mode") === "inpaint" ? "inpaint" : "img2img",
      output && output.url);
  }
}

// 7. Wiring
async function loadRecent() {
  const page = await api("/inferences?limit=8");
  const items = page.items.filter((j) => j.source !== "comfy");
  if (items.length && items[0].seed !== null) lastSeed = items[0].seed;
  for (const job of items.reverse()) addCard(job);
}

bindOutput("steps", "steps-out");
bindOutput("cfg_scale", "cfg-out");
bindOutput("denoising_strength", "denoise-out");
bindOutput("brush", "brush-out");
bindOutput("mask_blur", "blur-out");
bindOutput("inpaint_full_res_padding", "padding-out");
form.addEventListener("change", (e) => {
  if (e.target.name === "mode") syncMode();
  if (e.target.name === "width" || e.target.name === "height") snapSize(e.target, options);
  else if (options && e.target.type === "number") checkField(e.target, options.limits);
  remember();
});
form.addEventListener("input", (e) => { if (e.target.getAttribute("aria-invalid")) markField(e.target, ""); remember(); });
form.addEventListener("submit", submit);
$("lora-insert").addEventListener("click", insertLora);
$("model-triggers-insert").addEventListener("click", () => {
  const model = picker.models.find((m) => m.name === picker.value);
  if (!model || !model.trigger_words) return;
  const prompt = $("prompt");
  if (!prompt.value.includes(model.trigger_words)) prompt.value = [prompt.value.trim(), model.trigger_words].filter(Boolean).join(", ");
  prompt.focus();
  remember();
});
$("seed-random").addEventListener("click", () => { $("seed").value = -1; markField($("seed"), ""); });
$("seed-reuse").addEventListener("click", () => {
  if (lastSeed === null) { toast("No seed to reuse yet"); return; }
  $("seed").value = lastSeed;
});
$("size-swap").addEventListener("click", () => {
  [$("width").value, $("height").value] = [$("height").value, $("width").value];
  remember();
});
$("aspects").addEventListener("click", (e) => {
  const aspect = e.target.dataset.aspect;
  if (!aspect || !options) return;
  const [a, b] = aspect.split(":").map(Number);
  const long = Math.max(Number($("width").value) || 512, Number($("height").value) || 512);
  const short = Math.round((long * Math.min(a, b)) / Math.max(a, b) / 8) * 8;
  [$("width").value, $("height").value] = a >= b ? [long, short] : [short, long];
  for (const id of ["width", "height"]) snapSize($(id), options);
  remember();
});
$("init-choose").addEventListener("click", () => $("init-file").click());
$("init-file").addEventListener("change", (e) => takeImage(e.target.files[0], { asInput: true }));
const drop = $("init-drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault(); e.stopPropagation(); drop.classList.remove("over");
  takeImage(e.dataTransfer.files[0], { asInput: true });
});
$("generate-page").addEventListener("dragover", (e) => e.preventDefault());
$("generate-page").addEventListener("drop", (e) => { e.preventDefault(); takeImage(e.dataTransfer.files[0], { asInput: false }); });
document.addEventListener("paste", (e) => {
  const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
  if (file) { e.preventDefault(); takeImage(file, { asInput: mode() !== "txt2img" }); }
});
$("mask-clear").addEventListener("click", () => painter.clear());
$("mask-undo").addEventListener("click", () => painter.undo());
$("mask-zoom").addEventListener("click", () => {
  const on = $("stage").classList.toggle("zoomed");
  $("mask-zoom").setAttribute("aria-pressed", String(on));
});
syncMode();
setupPromptTools({ readValues, applyValues: (values) => { applyValues(values, { options, picker }); remember(); } });
Promise.all([loadChoices(), loadRecent()]).then(fromAddress).catch(showError).finally(() => {
  document.body.dataset.ready = "yes";
  pollQueue();
});
