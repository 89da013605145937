// Published workflows: pick one, fill its exposed inputs (the same inputs ComfyUI's Apps show), run it.

import { api, h, showError, toast } from "./api.js";
import { markField } from "./fields.js";
import { jobCard } from "./jobcard.js";
import { Viewer, viewerEntry } from "./viewer.js";

const $ = (id) => document.getElementById(id);
let current = null;

const viewer = new Viewer({
  reuse: () => toast("Reuse the values from the form above"),
  img2img: (job, index) => { location.href = `/?send=${job.id}&index=${index}&mode=img2img`; },
  inpaint: (job, index) => { location.href = `/?send=${job.id}&index=${index}&mode=inpaint`; },
  deleted: (job) => $("jobs").querySelector(`article.job[data-job-id="${job.id}"]`)?.remove(),
});

function openViewer(job, index) {
  const shown = [...$("jobs").querySelectorAll("article.job")].map((c) => c.jobRecord)
    .filter((j) => j && j.outputs && j.outputs.length).map(viewerEntry);
  viewer.open(shown, Math.max(0, shown.findIndex((e) => e.job.id === job.id)), index);
}

function field(input) {
  const id = `wf-${input.name}`;
  const label = h("label", { for: id }, input.label || input.name);
  const attrs = { id, name: input.name };
  let control;
  switch (input.type) {
    case "string":
      control = h("textarea", { ...attrs, rows: input.name.includes("prompt") ? 3 : 1 });
      control.value = input.default ?? "";
      break;
    case "int": case "float":
      control = h("input", { ...attrs, type: "number", step: input.type === "int" ? 1 : "any",
        min: input.min ?? undefined, max: input.max ?? undefined, value: input.default ?? "" });
      break;
    case "boolean":
      control = h("input", { ...attrs, type: "checkbox", checked: Boolean(input.default) });
      return h("div", {}, h("label", { for: id, class: "inline" }, control, ` ${input.label || input.name}`));
    case "choice":
      control = h("select", attrs, ...(input.choices || []).map((c) => h("option", { value: String(c) }, String(c))));
      if (input.default !== null && input.default !== undefined) control.value = String(input.default);
      break;
    case "image":
      control = h("input", { ...attrs, type: "file", accept: "image/png,image/jpeg,image/webp" });
      break;
    default:
      control = h("input", { ...attrs, value: input.default ?? "" });
  }
  control.dataset.type = input.type;
  return h("div", {}, label, control);
}

function choose(workflow) {
  current = workflow;
  $("workflow-panel").hidden = false;
  $("wf-title").textContent = `${workflow.name} (version ${workflow.version})`;
  $("wf-description").textContent = workflow.description || "";
  $("workflow-inputs").replaceChildren(...workflow.inputs.map(field));
  for (const item of $("workflow-list").querySelectorAll("button")) {
    item.setAttribute("aria-current", String(item.dataset.name === workflow.name));
  }
}

async function values() {
  const out = {};
  for (const input of current.inputs) {
    const control = $(`wf-${input.name}`);
    markField(control, "");
    if (input.type === "boolean") out[input.name] = control.checked;
    else if (input.type === "int" || input.type === "float") {
      if (control.value === "") continue;
      const number = Number(control.value);
      if (!Number.isFinite(number) || (input.type === "int" && !Number.isInteger(number))) {
        markField(control, `${input.label || input.name} must be a ${input.type === "int" ? "whole number" : "number"}`);
        control.focus();
        return null;
      }
      out[input.name] = number;
    } else if (input.type === "image") {
      const file = control.files[0];
      if (!file) continue;
      const body = new FormData();
      body.append("image", file);
      out[input.name] = (await api("/inputs", { method: "POST", body })).name;
    } else out[input.name] = control.value;
  }
  return out;
}

$("workflow-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!current) return;
  $("workflow-run").disabled = true;
  try {
    const inputs = await values();
    if (!inputs) return;
    const accepted = await api(`/workflows/${encodeURIComponent(current.name)}/runs`, { method: "POST", json: { inputs } });
    const job = await api(`/inferences/${accepted.id}`);
    $("jobs").querySelector(".empty")?.remove();
    $("jobs").prepend(jobCard({ ...job, prompt: job.prompt || `${current.name} v${current.version}` }, { onOpen: openViewer }));
  } catch (err) {
    const name = err.details && typeof err.details.field === "string" ? err.details.field.replace(/^inputs\./, "") : null;
    const control = name && $(`wf-${name}`);
    if (control) { markField(control, err.message); control.focus(); } else showError(err);
  } finally { $("workflow-run").disabled = false; }
});

async function load() {
  try {
    const workflows = (await api("/workflows")).items;
    $("workflow-list").replaceChildren(...workflows.map((w) => h("li", {},
      h("button", { type: "button", class: "tool-item", "data-name": w.name, onclick: () => choose(w) },
        h("strong", {}, w.name), w.description ? h("span", { class: "muted" }, ` — ${w.description}`) : null))));
    if (!workflows.length) $("workflow-list").append(h("li", { class: "muted" },
      "No published workflows yet. Lead artists publish them from the ComfyUI frontend (sdfleet menu)."));
    const wanted = new URLSearchParams(location.search).get("name");
    const first = workflows.find((w) => w.name === wanted) || workflows[0];
    if (first) choose(first);
  } catch (err) { showError(err); }
  document.body.dataset.ready = "yes";
}
load();
