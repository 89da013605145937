// The image viewer: full size, ←/→ through the batch and the history, zoom (wheel, drag, 1:1, fit),
// A/B compare with a split slider, and the actions (star, reuse, img2img, inpaint, model preview, download, delete).

import { api, can, confirmAction, listAll, showError, toast } from "./api.js";
import { jobLabel, paramsLine } from "./jobcard.js";

const $ = (id) => document.getElementById(id);
const STEP = 1.25;

/** Gallery items and job records alike, as {job, owner, starred, mine, outputs: [{index, url, thumb, width, height}]}. */
export function viewerEntry(record) {
  const job = record.job || record;
  const outputs = (record.outputs || job.outputs || []).map((o) => ({
    index: o.index, url: o.url, thumb: o.thumbnail_url || `${o.url}/thumbnail`, width: o.width, height: o.height }));
  const owner = record.owner || document.body.dataset.username;
  return { job, outputs, owner, starred: Boolean(record.starred), mine: owner === document.body.dataset.username };
}

export class Viewer {
  /** `actions`: {reuse(job), img2img(job, index), inpaint(job, index), deleted(job), starred(job, on)}. */
  constructor(actions) {
    this.actions = actions;
    this.images = [];
    this.at = 0;
    this.scale = null; // null: fit
    this.pan = { x: 0, y: 0 };
    this.compare = null; // the B image
    this.dialog = $("viewer");
    this.img = $("viewer-img");
    this.#wire();
  }

  /** Open on output `index` of `entries[position]`; the list is the history the arrows walk through. */
  open(entries, position, index = 0) {
    this.images = entries.flatMap((entry) => entry.outputs.map((output) => ({ entry, output })));
    const start = this.images.findIndex((i) => i.entry === entries[position] && i.output.index === index);
    this.at = Math.max(0, start);
    this.compare = null;
    if (!this.dialog.open) this.dialog.showModal();
    this.#show();
  }

  get current() { return this.images[this.at]; }

  go(step) {
    if (!this.images.length) return;
    this.at = (this.at + step + this.images.length) % this.images.length;
    this.#show();
  }

  zoom(scale) {
    this.scale = scale === null ? null : Math.min(16, Math.max(0.05, scale));
    if (scale === null) this.pan = { x: 0, y: 0 };
    this.#layout();
  }

  #fitScale() {
    const stage = $("viewer-stage").getBoundingClientRect();
    const { width, height } = this.current.output;
    return Math.min(1, stage.width / width, stage.height / height) || 1;
  }

  #layout() {
    if (!this.current) return;
    const scale = this.scale ?? this.#fitScale();
    const { width, height } = this.current.output;
    const layer = $("viewer-layer");
    layer.style.width = `${width}px`;
    layer.style.height = `${height}px`;
    layer.style.transform = `translate(calc(-50% + ${this.pan.x}px), calc(-50% + ${this.pan.y}px)) scale(${scale})`;
    $("viewer-scale").textContent = `${Math.round(scale * 100)} %`;
    this.dialog.dataset.scale = String(Math.round(scale * 100));
  }

  #show() {
    const { entry, output } = this.current;
    const { job } = entry;
    this.img.src = output.url;
    this.img.alt = `Output ${output.index + 1} of ${jobLabel(job)}`;
    this.scale = null;
    this.pan = { x: 0, y: 0 };
    $("viewer-title").textContent = jobLabel(job);
    const jobs = [...new Set(this.images.map((i) => i.entry))];
    $("viewer-count").textContent = `Image ${output.index + 1} of ${entry.outputs.length} · job ${jobs.indexOf(entry) + 1} of ${jobs.length}`
      + (entry.mine ? "" : ` · by ${entry.owner}`);
    $("viewer-params").textContent = [job.params?.negative_prompt && `Negative: ${job.params.negative_prompt}`, paramsLine(job)]
      .filter(Boolean).join(" · ");
    $("viewer-download").href = output.url;
    $("viewer-download").download = `${job.id}-${output.index}.png`;
    $("viewer-delete").hidden = !entry.mine;
    $("viewer-star").setAttribute("aria-pressed", String(entry.starred));
    $("viewer-star").textContent = entry.starred ? "★ Starred" : "☆ Star";
    $("viewer-preview").hidden = !can("checkpoint:all") || !job.model;
    for (const id of ["viewer-reuse", "viewer-img2img", "viewer-inpaint"]) $(id).hidden = !job.params;
    this.dialog.dataset.jobId = job.id;
    this.dialog.dataset.index = String(output.index);
    this.#showCompare();
    if (this.img.complete) this.#layout(); else this.img.onload = () => this.#layout();
  }

  #showCompare() {
    const on = Boolean(this.compare);
    $("viewer-compare").setAttribute("aria-pressed", String(on));
    $("viewer-compare-bar").hidden = !on;
    $("viewer-b").hidden = !on;
    if (!on) { this.img.style.clipPath = ""; return; }
    $("viewer-b").src = this.compare.output.url;
    $("viewer-a-label").textContent = `A: ${jobLabel(this.current.entry.job)} #${this.current.output.index + 1}`;
    $("viewer-b-label").textContent = `B: ${jobLabel(this.compare.entry.job)} #${this.compare.output.index + 1}`;
    this.#split();
  }

  #split() {
    // A (the current image) shows left of the split, B right of it.
    this.img.style.clipPath = `inset(0 ${100 - Number($("viewer-split").value)}% 0 0)`;
  }

  toggleCompare() {
    this.compare = this.compare ? null : this.current;
    if (this.compare) toast("B is this image: move to another with ← → to compare");
    this.#showCompare();
  }

  #wire() {
    $("viewer-prev").addEventListener("click", () => this.go(-1));
    $("viewer-next").addEventListener("click", () => this.go(1));
    $("viewer-fit").addEventListener("click", () => this.zoom(null));
    $("viewer-actual").addEventListener("click", () => this.zoom(1));
    $("viewer-zoom-in").addEventListener("click", () => this.zoom((this.scale ?? this.#fitScale()) * STEP));
    $("viewer-zoom-out").addEventListener("click", () => this.zoom((this.scale ?? this.#fitScale()) / STEP));
    $("viewer-compare").addEventListener("click", () => this.toggleCompare());
    $("viewer-split").addEventListener("input", () => this.#split());
    const stage = $("viewer-stage");
    stage.addEventListener("wheel", (e) => {
      e.preventDefault();
      this.zoom((this.scale ?? this.#fitScale()) * (e.deltaY < 0 ? STEP : 1 / STEP));
    }, { passive: false });
    let drag = null;
    stage.addEventListener("pointerdown", (e) => { drag = { x: e.clientX - this.pan.x, y: e.clientY - this.pan.y }; stage.setPointerCapture(e.pointerId); });
    stage.addEventListener("pointermove", (e) => {
      if (!drag) return;
      this.pan = { x: e.clientX - drag.x, y: e.clientY - drag.y };
      this.#layout();
    });
    stage.addEventListener("pointerup", () => { drag = null; });
    this.dialog.addEventListener("keydown", (e) => {
      if (e.target.tagName === "INPUT") return;
      const keys = { ArrowLeft: () => this.go(-1), ArrowRight: () => this.go(1), "+": () => $("viewer-zoom-in").click(),
        "=": () => $("viewer-zoom-in").click(), "-": () => $("viewer-zoom-out").click(), 0: () => this.zoom(null),
        1: () => this.zoom(1), c: () => this.toggleCompare() };
      if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
    });
    addEventListener("resize", () => { if (this.dialog.open) this.#layout(); });
    const act = (id, fn) => $(id).addEventListener("click", () => { if (this.current) fn(this.current); });
    act("viewer-reuse", ({ entry }) => { this.dialog.close(); this.actions.reuse(entry.job); });
    act("viewer-img2img", ({ entry, output }) => { this.dialog.close(); this.actions.img2img(entry.job, output.index); });
    act("viewer-inpaint", ({ entry, output }) => { this.dialog.close(); this.actions.inpaint(entry.job, output.index); });
    act("viewer-star", async ({ entry }) => {
      const on = !entry.starred;
      try {
        await api(`/gallery/${entry.job.id}/star`, { method: on ? "PUT" : "DELETE" });
        entry.starred = on;
        this.actions.starred?.(entry.job, on);
        this.#show();
      } catch (err) { showError(err); }
    });
    act("viewer-preview", async ({ entry, output }) => {
      try {
        const models = await listAll("/checkpoints?type=Stable-diffusion");
        const model = models.find((m) => m.name === entry.job.model);
        if (!model) throw new Error(`${entry.job.model} is no longer in the registry`);
        await api(`/checkpoints/${model.id}/preview`, { method: "PUT", json: { job_id: entry.job.id, index: output.index } });
        toast(`Preview of ${model.name} set`);
      } catch (err) { showError(err); }
    });
    act("viewer-delete", async ({ entry }) => {
      if (!await confirmAction("Delete this job and its images?", { ok: "Delete", danger: true })) return;
      try {
        await api(`/inferences/${entry.job.id}`, { method: "DELETE" });
        this.images = this.images.filter((i) => i.entry !== entry);
        this.actions.deleted?.(entry.job);
        if (!this.images.length) this.dialog.close(); else { this.at = Math.min(this.at, this.images.length - 1); this.#show(); }
      } catch (err) { showError(err); }
    });
  }
}
