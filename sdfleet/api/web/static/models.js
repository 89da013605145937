// The model registry: list and filter, upload (resumable), import from URL, rename, visibility, delete.

import { api, confirmAction, formatBytes, h, Pager, showError, toast } from "./api.js";
import { markField } from "./fields.js";
import { EVERYONE, RolePicker } from "./roles.js";
import { pendingUploads, uploadModel } from "./upload.js";

const $ = (id) => document.getElementById(id);
const TYPES = ["Stable-diffusion", "Lora", "VAE", "ControlNet", "embeddings", "upscaler", "diffusion_models",
  "text_encoders"];

for (const select of document.querySelectorAll(".model-types")) {
  select.append(...TYPES.map((t) => h("option", { value: t }, t)));
}

const pager = new Pager((cursor) => {
  const params = new URLSearchParams({ limit: "25" });
  if ($("filter-type").value) params.set("type", $("filter-type").value);
  if ($("filter-arch").value) params.set("architecture", $("filter-arch").value);
  if ($("filter-name").value) params.set("name", $("filter-name").value);
  if (cursor) params.set("cursor", cursor);
  return api(`/checkpoints?${params}`);
});

function setBar(container, fraction, text) {
  container.hidden = false;
  const pct = Math.round(fraction * 100);
  container.querySelector(".progress > div").style.width = `${pct}%`;
  container.querySelector("[role=progressbar]").setAttribute("aria-valuenow", String(pct));
  container.querySelector("p").textContent = text;
}

async function patch(model, body, message) {
  try {
    await api(`/checkpoints/${model.id}`, { method: "PATCH", json: body });
    toast(message);
    render(await pager.reload());
  } catch (err) { showError(err); }
}

const uploadRoles = new RolePicker($("upload-roles"), "upload-role");
const editRoles = new RolePicker($("edit-roles"), "edit-role");

function visibleTo(roles) {
  return roles.includes(EVERYONE) ? "everyone" : roles.join(", ");
}

/** The edit dialog: name and visibility. */
async function edit(m) {
  const dialog = $("model-edit");
  $("model-edit-title").textContent = `Edit ${m.name}`;
  $("edit-name").value = m.name;
  markField($("edit-name"), "");
  const notes = await api(`/checkpoints/${m.id}/notes`).catch(() => ({ trigger_words: "", notes: "" }));
  $("edit-triggers").value = notes.trigger_words;
  $("edit-notes").value = notes.notes;
  await editRoles.render(m.allowed_roles);
  dialog.showModal();
  $("edit-name").focus();
}

$("model-edit-save").addEventListener("click", async (e) => {
  e.preventDefault();
  const m = current.get($("model-edit").dataset.modelId);
  const name = $("edit-name").value.trim();
  if (!name) { markField($("edit-name"), "A name is required"); return; }
  const roles = editRoles.value();
  if (!roles) return;
  const body = { allowed_roles: roles };
  if (name !== m.name) body.name = name;
  try {
    await api(`/checkpoints/${m.id}`, { method: "PATCH", json: body });
    await api(`/checkpoints/${m.id}/notes`, { method: "PUT",
      json: { trigger_words: $("edit-triggers").value, notes: $("edit-notes").value } });
    $("model-edit").close();
    toast(`Saved ${name}`);
    render(await pager.reload());
  } catch (err) {
    if (err.details && err.details.field === "name") markField($("edit-name"), err.message);
    else showError(err);
  }
});

const current = new Map();
let notesById = new Map();

function row(m) {
  current.set(m.id, m);
  const note = notesById.get(m.id);
  return h("tr", { "data-model-name": m.name },
    h("td", { class: "preview-cell" }, note && note.preview_url ? h("img", { src: note.preview_url, alt: `Preview of ${m.name}`, loading: "lazy" }) : ""),
    h("td", {}, m.name, note && note.trigger_words ? h("div", { class: "muted small-text" }, `Trigger: ${note.trigger_words}`) : null), h("td", {}, m.type), h("td", {}, m.architecture), h("td", {}, formatBytes(m.size)),
    h("td", { class: "mono", title: m.sha256 }, m.short_hash), h("td", { "data-role": "visibility" }, visibleTo(m.allowed_roles)),
    h("td", {},
      h("button", { class: "small", type: "button", "data-role": "edit", onclick: () => {
        $("model-edit").dataset.modelId = m.id;
        edit(m);
      } }, "Edit"),
      h("a", { class: "button small", href: `/api/v1/checkpoints/${m.id}/download` }, "Download"),
      h("button", { class: "small danger", type: "button", onclick: async () => {
        if (!await confirmAction(`Delete ${m.name}?`, { ok: "Delete", danger: true })) return;
        try { await api(`/checkpoints/${m.id}`, { method: "DELETE" }); toast("Deleted"); render(await pager.reload()); } catch (err) { showError(err); }
      } }, "Delete")));
}

function render(page) {
  api("/model-notes").then((notes) => {
    const fresh = new Map(notes.map((n) => [n.checkpoint_id, n]));
    const changed = JSON.stringify([...fresh]) !== JSON.stringify([...notesById]);
    notesById = fresh;
    if (changed) render(page);
  }).catch(() => {});
  $("models").replaceChildren(...page.items.map(row));
  if (!page.items.length) $("models").append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No models match.")));
  $("models-prev").disabled = !pager.hasPrev;
  $("models-next").disabled = !pager.next;
}

async function first() { try { render(await pager.first()); } catch (err) { showError(err); } }

$("upload-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) return;
  const roles = uploadRoles.value();
  if (!roles) return;
  $("upload-start").disabled = true;
  try {
    const model = await uploadModel(file, { type: $("upload-type").value, allowedRoles: roles,
      onProgress: (done, total, resumed) => setBar($("upload-progress"), total ? done / total : 1,
        `${resumed ? "Resumed: " : ""}${formatBytes(done)} of ${formatBytes(total)}`) });
    setBar($("upload-progress"), 1, `Registered ${model.name} (${model.architecture})`);
    $("upload-resume").hidden = true;
    uploadRoles.render([EVERYONE]);
first();
  } catch (err) {
    showError(err);
    $("upload-status").textContent = `Stopped: ${err.message}. Choose the same file again to resume.`;
  } finally {
    $("upload-start").disabled = false;
  }
});

$("import-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    let job = await api("/checkpoints/imports", { method: "POST", json: { url: $("import-url").value, type: $("import-type").value } });
    while (job.status === "queued" || job.status === "running") {
      setBar($("import-progress"), job.bytes_total ? job.bytes_done / job.bytes_total : 0,
        `${job.status}: ${formatBytes(job.bytes_done)}${job.bytes_total ? ` of ${formatBytes(job.bytes_total)}` : ""}`);
      await new Promise((r) => setTimeout(r, 1000));
      job = await api(`/checkpoints/imports/${job.id}`);
    }
    if (job.status === "failed") throw new Error(job.error || "import failed");
    setBar($("import-progress"), 1, "Imported");
    uploadRoles.render([EVERYONE]);
first();
  } catch (err) { showError(err); $("import-status").textContent = `Failed: ${err.message}`; }
});

for (const id of ["filter-type"]) $(id).addEventListener("change", first);
for (const id of ["filter-arch", "filter-name"]) {
  let timer;
  $(id).addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(first, 250); });
}
$("models-prev").addEventListener("click", async () => render(await pager.back()));
$("models-next").addEventListener("click", async () => render(await pager.forward()));

const pending = pendingUploads();
if (pending.length) {
  $("upload-resume").hidden = false;
  $("upload-resume").textContent = `Unfinished upload: ${pending.map((p) => p.filename).join(", ")}. Choose the same file and press Upload to resume.`;
}
uploadRoles.render([EVERYONE]);
first();
