// A job card: status, live progress (step, elapsed, ETA, "loading model"), step preview over SSE,
// outputs with their actions.

import { api, confirmAction, h, showError, toast } from "./api.js";

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/** What a job is called in lists: its prompt, or what it was when it has none. */
export function jobLabel(job) {
  if (job.prompt) return job.prompt;
  if (job.task) return "(empty prompt)";
  if (job.source === "workflow") return "Published workflow run";
  if (job.source === "comfy") return "ComfyUI workflow";
  return "Node graph";
}

export function paramsLine(job) {
  const p = job.params || {};
  const bits = [
    job.model && `Model: ${job.model}`, p.sampler_name && `Sampler: ${p.sampler_name}`,
    p.scheduler && `Schedule: ${p.scheduler}`, p.steps && `Steps: ${p.steps}`, p.cfg_scale && `CFG: ${p.cfg_scale}`,
    p.width && `Size: ${p.width}×${p.height}`, job.seed !== null && job.seed !== undefined && `Seed: ${job.seed}`,
    p.denoising_strength !== undefined && `Denoise: ${p.denoising_strength}`, job.endpoint && `Endpoint: ${job.endpoint}`,
  ];
  return bits.filter(Boolean).join(" · ");
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return m ? `${m}:${String(s % 60).padStart(2, "0")}` : `${s} s`;
}

/** "Step 7/20 · 0:12 elapsed · about 0:20 left" from a progress report and the start time. */
export function progressText({ value, max, phase, model }, startedAt, now = Date.now()) {
  if (phase === "loading_model") return `Loading model ${model || ""}…`.replace("  ", " ");
  const elapsed = startedAt ? (now - startedAt) / 1000 : null;
  const bits = [];
  if (max) bits.push(`Step ${value}/${max}`);
  if (elapsed !== null) bits.push(`${formatDuration(elapsed)} elapsed`);
  if (max && value > 0 && value < max && elapsed !== null) bits.push(`about ${formatDuration((elapsed / value) * (max - value))} left`);
  return bits.join(" · ");
}

/** Render a job and keep it live until it ends. Returns the card element. */
export function jobCard(job, { onReuse, onSendToImg2img, onOpen } = {}) {
  const badge = h("span", { class: `badge ${job.status}`, "data-role": "status" }, job.status);
  const cancel = h("button", { class: "small danger", type: "button", "data-role": "cancel" }, "Cancel");
  const remove = h("button", { class: "small", type: "button", "data-role": "delete", hidden: true }, "Delete");
  const reuse = h("button", { class: "small", type: "button", "data-role": "reuse" }, "Reuse parameters");
  const fill = h("div");
  const bar = h("div", { class: "progress", role: "progressbar", "aria-label": "Progress", "aria-valuemin": 0,
                         "aria-valuemax": 100, "aria-valuenow": 0 }, fill);
  const detail = h("p", { class: "job-detail muted", "data-role": "detail", "aria-live": "polite" });
  const previewImg = h("img", { alt: "Step preview", "data-role": "preview" });
  const previewNote = h("figcaption", { class: "muted" });
  const preview = h("figure", { class: "preview", hidden: true }, previewImg, previewNote);
  const images = h("div", { class: "images" });
  const params = h("div", { class: "params" }, paramsLine(job));
  const error = h("p", { class: "error", hidden: true });
  const label = jobLabel(job);
  const card = h("article", { class: "job", "data-job-id": job.id, "data-status": job.status },
    h("div", { class: "job-head" }, badge, h("span", { class: `prompt${job.prompt ? "" : " muted"}`, title: label }, label),
      reuse, cancel, remove),
    bar, detail, preview, images, error, params);

  let current = job;
  let previewBusy = false;
  let last = { value: job.progress?.value || 0, max: job.progress?.max || 0 };
  let startedAt = job.started_at ? Date.parse(job.started_at) : null;
  let ticker = null;

  function setProgress(fraction) {
    const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    fill.style.width = `${pct}%`;
    bar.setAttribute("aria-valuenow", String(pct));
  }

  function showDetail() {
    if (card.dataset.status === "running") detail.textContent = progressText(last, startedAt);
    else if (card.dataset.status === "queued") detail.textContent = card.dataset.position ? `Queued · position ${card.dataset.position}` : "Queued";
  }

  function setStatus(status) {
    card.dataset.status = status;
    badge.className = `badge ${status}`;
    badge.textContent = status;
    cancel.hidden = TERMINAL.has(status);
    remove.hidden = !TERMINAL.has(status);
    if (status === "running" && !startedAt) startedAt = Date.now();
    if (status === "running" && !ticker) ticker = setInterval(showDetail, 1000);
    if (TERMINAL.has(status)) { clearInterval(ticker); ticker = null; }
    showDetail();
  }

  async function refreshPreview() {
    if (previewBusy) return;
    previewBusy = true;
    try {
      const response = await api(`/inferences/${job.id}/preview`, { raw: true });
      if (response.status === 200 && !TERMINAL.has(card.dataset.status)) {
        const blob = await response.blob();
        const old = previewImg.src;
        previewImg.src = URL.createObjectURL(blob);
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
        preview.hidden = false;
      }
    } catch { /* previews are best effort */ } finally {
      previewBusy = false;
    }
  }

  function renderOutputs(full) {
    images.replaceChildren(...full.outputs.map((o) => {
      const img = h("img", { src: `${o.url}/thumbnail`, alt: `Output ${o.index + 1} of ${jobLabel(full)}`, loading: "lazy",
                             width: o.width, height: o.height });
      const open = h("button", { class: "thumb ghost", type: "button", "data-role": "open",
                                 "aria-label": `Open output ${o.index + 1} full size`,
                                 onclick: () => (onOpen ? onOpen(full, o.index) : window.open(o.url, "_blank")) }, img);
      const actions = h("figcaption", {},
        h("a", { class: "button small", href: o.url, download: `${full.id}-${o.index}.png` }, "Download"),
        onSendToImg2img && h("button", { class: "small", type: "button", "data-role": "send-img2img",
                                         onclick: () => onSendToImg2img(full, o.index) }, "Send to img2img"));
      return h("figure", {}, open, actions);
    }));
  }

  async function finish() {
    try {
      current = await api(`/inferences/${job.id}`);
    } catch (err) { if (err.status !== 404) showError(err); return; }
    card.jobRecord = current;
    setStatus(current.status);
    params.textContent = paramsLine(current);
    detail.textContent = "";
    if (current.status === "succeeded") {
      setProgress(1);
      preview.hidden = true;
      const took = current.started_at && current.finished_at
        ? (Date.parse(current.finished_at) - Date.parse(current.started_at)) / 1000 : null;
      if (took !== null) detail.textContent = `Done in ${formatDuration(took)}`;
      renderOutputs(current);
    } else if (current.status === "failed") {
      error.hidden = false;
      error.textContent = (current.error && current.error.message) || "failed";
    } else if (current.status === "cancelled") {
      const step = current.progress && current.progress.max ? ` at step ${current.progress.value}/${current.progress.max}` : "";
      detail.textContent = `Cancelled${step}`;
      if (!preview.hidden) {
        preview.classList.add("stopped");
        previewNote.textContent = `Last preview before cancelling${step}`;
      }
    }
  }

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const updated = await api(`/inferences/${job.id}/cancel`, { method: "POST" });
      if (TERMINAL.has(updated.status)) finish();
      else toast("Cancel requested");
    } catch (err) { showError(err); } finally { cancel.disabled = false; }
  });
  remove.addEventListener("click", async () => {
    if (!await confirmAction("Delete this job and its images?", { ok: "Delete", danger: true })) return;
    try {
      await api(`/inferences/${job.id}`, { method: "DELETE" });
      card.remove();
    } catch (err) { showError(err); }
  });
  reuse.addEventListener("click", () => onReuse && onReuse(current));
  reuse.hidden = !onReuse || !job.params;

  card.cancelJob = () => cancel.click();
  card.setPosition = (position) => {
    if (position) card.dataset.position = String(position); else delete card.dataset.position;
    showDetail();
  };
  setStatus(job.status);
  setProgress(job.progress ? job.progress.fraction : 0);
  if (TERMINAL.has(job.status)) {
    finish();
  } else {
    const source = new EventSource(`/api/v1/inferences/${job.id}/events`);
    source.addEventListener("started", () => { startedAt = Date.now(); setStatus("running"); });
    source.addEventListener("requeued", () => { startedAt = null; setStatus("queued"); });
    source.addEventListener("progress", (e) => {
      const data = JSON.parse(e.data);
      last = data;
      setStatus("running");
      if (data.max) setProgress(data.value / data.max);
      if (data.phase !== "loading_model") refreshPreview();
    });
    for (const name of ["succeeded", "failed", "cancelled", "deleted"]) {
      source.addEventListener(name, () => { source.close(); if (name !== "deleted") finish(); });
    }
    source.onerror = () => {
      // The browser reconnects with Last-Event-ID; a closed stream after the end is fine.
      if (TERMINAL.has(card.dataset.status)) source.close();
    };
  }
  return card;
}
