// A job card: status, live progress bar and step preview over SSE, outputs with their actions.

import { api, h, showError, toast } from "./api.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

function paramsLine(job) {
  const p = job.params || {};
  const bits = [
    job.model && `Model: ${job.model}`, p.sampler_name && `Sampler: ${p.sampler_name}`,
    p.scheduler && `Schedule: ${p.scheduler}`, p.steps && `Steps: ${p.steps}`, p.cfg_scale && `CFG: ${p.cfg_scale}`,
    p.width && `Size: ${p.width}×${p.height}`, job.seed !== null && job.seed !== undefined && `Seed: ${job.seed}`,
    p.denoising_strength !== undefined && `Denoise: ${p.denoising_strength}`, job.endpoint && `Endpoint: ${job.endpoint}`,
  ];
  return bits.filter(Boolean).join(" · ");
}

/** Render a job and keep it live until it ends. Returns the card element. */
export function jobCard(job, { onReuse, onSendToImg2img } = {}) {
  const badge = h("span", { class: `badge ${job.status}`, "data-role": "status" }, job.status);
  const cancel = h("button", { class: "small danger", type: "button", "data-role": "cancel" }, "Cancel");
  const remove = h("button", { class: "small", type: "button", "data-role": "delete", hidden: true }, "Delete");
  const reuse = h("button", { class: "small", type: "button", "data-role": "reuse" }, "Reuse parameters");
  const fill = h("div");
  const bar = h("div", { class: "progress", role: "progressbar", "aria-label": "Progress", "aria-valuemin": 0,
                         "aria-valuemax": 100, "aria-valuenow": 0 }, fill);
  const previewImg = h("img", { alt: "Step preview", "data-role": "preview" });
  const preview = h("div", { class: "preview", hidden: true }, previewImg);
  const images = h("div", { class: "images" });
  const params = h("div", { class: "params" }, paramsLine(job));
  const error = h("p", { class: "error", hidden: true });
  const card = h("article", { class: "job", "data-job-id": job.id, "data-status": job.status },
    h("div", { class: "job-head" }, badge, h("span", { class: "prompt", title: job.prompt || "" }, job.prompt || "(graph)"),
      reuse, cancel, remove),
    bar, preview, images, error, params);

  let current = job;
  let previewBusy = false;

  function setProgress(fraction) {
    const pct = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    fill.style.width = `${pct}%`;
    bar.setAttribute("aria-valuenow", String(pct));
  }

  function setStatus(status) {
    card.dataset.status = status;
    badge.className = `badge ${status}`;
    badge.textContent = status;
    cancel.hidden = TERMINAL.has(status);
    remove.hidden = !TERMINAL.has(status);
  }

  async function refreshPreview() {
    if (previewBusy) return;
    previewBusy = true;
    try {
      const response = await api(`/inferences/${job.id}/preview`, { raw: true });
      if (response.status === 200) {
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
      const img = h("img", { src: o.url, alt: `Output ${o.index + 1} of ${full.prompt || "job"}`, loading: "lazy",
                             width: o.width, height: o.height });
      const actions = h("figcaption", {},
        h("a", { class: "button small", href: o.url, target: "_blank", rel: "noopener" }, "Open"),
        h("a", { class: "button small", href: o.url, download: `${full.id}-${o.index}.png` }, "Download"),
        onSendToImg2img && h("button", { class: "small", type: "button", "data-role": "send-img2img",
                                         onclick: () => onSendToImg2img(o.url, full) }, "Send to img2img"));
      return h("figure", {}, img, actions);
    }));
  }

  async function finish() {
    try {
      current = await api(`/inferences/${job.id}`);
    } catch (err) { showError(err); return; }
    setStatus(current.status);
    params.textContent = paramsLine(current);
    if (current.status === "succeeded") {
      setProgress(1);
      preview.hidden = true;
      renderOutputs(current);
    } else if (current.status === "failed") {
      error.hidden = false;
      error.textContent = (current.error && current.error.message) || "failed";
    }
  }

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      const updated = await api(`/inferences/${job.id}/cancel`, { method: "POST" });
      if (TERMINAL.has(updated.status)) setStatus(updated.status);
      toast("Cancel requested");
    } catch (err) { showError(err); } finally { cancel.disabled = false; }
  });
  remove.addEventListener("click", async () => {
    try {
      await api(`/inferences/${job.id}`, { method: "DELETE" });
      card.remove();
    } catch (err) { showError(err); }
  });
  reuse.addEventListener("click", () => onReuse && onReuse(current));
  reuse.hidden = !onReuse || !job.params;

  setStatus(job.status);
  setProgress(job.progress ? job.progress.fraction : 0);
  if (TERMINAL.has(job.status)) {
    finish();
  } else {
    const source = new EventSource(`/api/v1/inferences/${job.id}/events`);
    source.addEventListener("started", () => setStatus("running"));
    source.addEventListener("requeued", () => setStatus("queued"));
    source.addEventListener("progress", (e) => {
      const data = JSON.parse(e.data);
      setStatus("running");
      if (data.max) setProgress(data.value / data.max);
      refreshPreview();
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
