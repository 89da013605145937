// The gallery: search your images (or the team's with gallery:all) by prompt, model, status, date, star and
// board, in SQL with paging; the viewer; stars; boards; bulk zip download and delete.

import { api, confirmAction, debounce, formatTime, h, Pager, showError, toast } from "./api.js";
import { jobLabel } from "./jobcard.js";
import { Viewer, viewerEntry } from "./viewer.js";

const $ = (id) => document.getElementById(id);
const grid = $("gallery");
const ACTIVE = new Set(["queued", "running"]);
const selected = new Set();
let entries = [];
let boards = [];

const viewer = new Viewer({
  reuse: (job) => { location.href = `/?reuse=${job.id}`; },
  img2img: (job, index) => { location.href = `/?send=${job.id}&index=${index}&mode=img2img`; },
  inpaint: (job, index) => { location.href = `/?send=${job.id}&index=${index}&mode=inpaint`; },
  deleted: () => refresh(),
  starred: () => refresh(),
});

function filters() {
  const params = new URLSearchParams();
  const set = (key, id) => { const v = $(id)?.value.trim(); if (v) params.set(key, v); };
  set("q", "filter-q"); set("model", "filter-model"); set("status", "filter-status"); set("board", "filter-board");
  set("owner", "filter-owner");
  if ($("filter-scope") && $("filter-scope").value === "team") params.set("scope", "team");
  if ($("filter-since").value) params.set("since", new Date(`${$("filter-since").value}T00:00:00`).toISOString());
  if ($("filter-until").value) {
    const end = new Date(`${$("filter-until").value}T00:00:00`);
    end.setDate(end.getDate() + 1);
    params.set("until", end.toISOString());
  }
  if ($("filter-starred").checked) params.set("starred", "true");
  return params;
}

const pager = new Pager((cursor) => {
  const params = filters();
  params.set("limit", $("page-size").value);
  if (cursor) params.set("cursor", cursor);
  return api(`/gallery?${params}`);
});

async function toggleStar(entry, button) {
  const on = !entry.starred;
  try {
    await api(`/gallery/${entry.job.id}/star`, { method: on ? "PUT" : "DELETE" });
    entry.starred = on;
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? "★" : "☆";
  } catch (err) { showError(err); }
}

function card(entry, position) {
  const { job } = entry;
  const first = entry.outputs[0];
  const label = jobLabel(job);
  const thumb = first
    ? h("button", { class: "thumb ghost", type: "button", "data-role": "open", "aria-label": `Open ${label} full size`,
                    onclick: () => viewer.open(entries, position, first.index) },
      h("img", { src: first.thumb, alt: label, loading: "lazy", width: first.width, height: first.height }),
      entry.outputs.length > 1 ? h("span", { class: "count-badge" }, `${entry.outputs.length}`) : null)
    : h("div", { class: "thumb" }, job.status === "running" ? `${Math.round(job.progress.fraction * 100)} %` : job.status);
  const check = h("input", { type: "checkbox", "aria-label": `Select ${label}`, checked: selected.has(job.id),
    onchange: (e) => { if (e.target.checked) selected.add(job.id); else selected.delete(job.id); syncSelection(); } });
  const star = h("button", { class: "small ghost star", type: "button", "data-role": "star", "aria-pressed": String(entry.starred),
                             "aria-label": `Star ${label}`, title: "Star" }, entry.starred ? "★" : "☆");
  star.addEventListener("click", () => toggleStar(entry, star));
  const actions = h("div", { class: "actions-line" });
  if (first) actions.append(h("a", { class: "button small", href: first.url, download: `${job.id}-${first.index}.png` }, "Download"));
  if (ACTIVE.has(job.status)) {
    actions.append(h("button", { class: "small danger", type: "button", "data-role": "cancel", onclick: async () => {
      try { await api(`/queue/${job.id}/cancel`, { method: "POST" }); refresh(); } catch (err) { showError(err); }
    } }, "Cancel"));
  } else if (entry.mine) {
    actions.append(h("button", { class: "small danger", type: "button", "data-role": "delete", onclick: async () => {
      if (!await confirmAction("Delete this job and its images?", { ok: "Delete", danger: true })) return;
      try { await api(`/inferences/${job.id}`, { method: "DELETE" }); refresh(); } catch (err) { showError(err); }
    } }, "Delete"));
  }
  return h("article", { class: "card", "data-job-id": job.id, "data-status": job.status },
    thumb,
    h("div", { class: "body" },
      h("div", { class: "card-line" }, check, h("span", { class: `badge ${job.status}` }, job.status),
        h("span", { class: "muted" }, formatTime(job.queued_at)), star),
      h("div", { class: `prompt${job.prompt ? "" : " muted"}`, title: label }, label),
      h("div", { class: "muted" }, [job.model, entry.mine ? null : `by ${entry.owner}`].filter(Boolean).join(" · ")),
      actions));
}

function syncSelection() {
  const n = selected.size;
  $("selected-count").textContent = `${n} selected`;
  const mine = entries.filter((e) => selected.has(e.job.id));
  for (const id of ["bulk-download", "bulk-board-add", "bulk-board-remove"]) $(id).disabled = !n;
  $("bulk-delete").disabled = !n || mine.some((e) => !e.mine) || mine.length < n;
  $("select-page").checked = entries.length > 0 && entries.every((e) => selected.has(e.job.id));
}

function render(page) {
  entries = page.items.map(viewerEntry);
  grid.replaceChildren(...entries.map(card));
  const filtered = [...filters().keys()].length > 0;
  $("gallery-empty").hidden = entries.length > 0 || filtered;
  $("gallery-no-match").hidden = entries.length > 0 || !filtered;
  $("prev").disabled = !pager.hasPrev;
  $("next").disabled = !pager.next;
  syncSelection();
  grid.dataset.query = String(filters());
  clearTimeout(render.timer);
  if (entries.some((e) => ACTIVE.has(e.job.status))) render.timer = setTimeout(refresh, 2000);
  document.body.dataset.ready = "yes";
}

async function refresh() { try { render(await pager.reload()); } catch (err) { showError(err); } }
async function first() {
  selected.clear();
  const board = $("filter-board").value;
  $("bulk-board-remove").hidden = $("board-rename").hidden = $("board-delete").hidden = !board;
  history.replaceState(null, "", `${location.pathname}${[...filters().keys()].length ? `?${filters()}` : ""}`);
  try { render(await pager.first()); } catch (err) { showError(err); }
}

async function loadBoards() {
  boards = (await api("/boards")).items;
  const keep = $("filter-board").value;
  $("filter-board").replaceChildren(h("option", { value: "" }, "All boards"),
    ...boards.map((b) => h("option", { value: b.id }, `${b.name} (${b.item_count})`)));
  $("filter-board").value = boards.some((b) => b.id === keep) ? keep : "";
  $("bulk-board").replaceChildren(h("option", { value: "" }, "Add to board…"), ...boards.map((b) => h("option", { value: b.id }, b.name)));
}

async function loadModels() {
  const scope = $("filter-scope")?.value === "team" ? "team" : "mine";
  const models = await api(`/gallery/models?scope=${scope}`);
  const keep = $("filter-model").value;
  $("filter-model").replaceChildren(h("option", { value: "" }, "All models"), ...models.map((m) => h("option", { value: m }, m)));
  if (models.includes(keep)) $("filter-model").value = keep;
}

async function bulk(fn) {
  try { await fn([...selected]); } catch (err) { showError(err); }
}

// Restore filters from the address (links and reloads keep them).
const start = new URLSearchParams(location.search);
for (const [key, id] of [["q", "filter-q"], ["status", "filter-status"], ["owner", "filter-owner"]]) {
  if (start.get(key) && $(id)) $(id).value = start.get(key);
}
if (start.get("scope") === "team" && $("filter-scope")) $("filter-scope").value = "team";
if (start.get("starred") === "true") $("filter-starred").checked = true;

$("gallery-filters").addEventListener("submit", (e) => { e.preventDefault(); first(); });
$("gallery-filters").addEventListener("change", (e) => {
  if (e.target.id === "filter-scope") loadModels().catch(showError);
  if (e.target.id !== "filter-q" && e.target.id !== "filter-owner") first();
});
const typed = debounce(first, 300);
$("filter-q").addEventListener("input", typed);
$("filter-owner")?.addEventListener("input", typed);
$("prev").addEventListener("click", async () => { try { render(await pager.back()); } catch (err) { showError(err); } });
$("next").addEventListener("click", async () => { try { render(await pager.forward()); } catch (err) { showError(err); } });
$("select-page").addEventListener("change", (e) => {
  for (const entry of entries) { if (e.target.checked) selected.add(entry.job.id); else selected.delete(entry.job.id); }
  for (const box of grid.querySelectorAll(".card-line input[type=checkbox]")) box.checked = e.target.checked;
  syncSelection();
});
$("bulk-download").addEventListener("click", () => bulk(async (ids) => {
  const response = await api("/gallery/download", { method: "POST", json: { job_ids: ids }, raw: true });
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: "sdfleet-images.zip" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}));
$("bulk-delete").addEventListener("click", () => bulk(async (ids) => {
  if (!await confirmAction(`Delete ${ids.length} job(s) and their images?`, { ok: "Delete", danger: true })) return;
  const { deleted } = await api("/gallery/delete", { method: "POST", json: { job_ids: ids } });
  toast(`Deleted ${deleted} job(s)`);
  selected.clear();
  refresh();
}));
$("bulk-board-add").addEventListener("click", () => bulk(async (ids) => {
  const board = $("bulk-board").value;
  if (!board) { toast("Choose a board first"); return; }
  const updated = await api(`/boards/${board}/items`, { method: "POST", json: { job_ids: ids } });
  toast(`${updated.name}: ${updated.item_count} job(s)`);
  await loadBoards();
  refresh();
}));
$("bulk-board-remove").addEventListener("click", () => bulk(async (ids) => {
  const board = $("filter-board").value;
  for (const id of ids) await api(`/boards/${board}/items/${id}`, { method: "DELETE" });
  await loadBoards();
  first();
}));
$("new-board-create").addEventListener("click", async () => {
  const name = $("new-board").value.trim();
  if (!name) { $("new-board").focus(); return; }
  try {
    const board = await api("/boards", { method: "POST", json: { name } });
    $("new-board").value = "";
    await loadBoards();
    $("bulk-board").value = board.id;
    toast(`Board ${board.name} created`);
  } catch (err) { showError(err); }
});
$("board-rename").addEventListener("click", async () => {
  const board = boards.find((b) => b.id === $("filter-board").value);
  const name = $("new-board").value.trim();
  if (!board || !name) { toast("Type the new name in the board name field first"); $("new-board").focus(); return; }
  try { await api(`/boards/${board.id}`, { method: "PATCH", json: { name } }); $("new-board").value = ""; await loadBoards(); } catch (err) { showError(err); }
});
$("board-delete").addEventListener("click", async () => {
  const board = boards.find((b) => b.id === $("filter-board").value);
  if (!board || !await confirmAction(`Delete the board ${board.name}? Its images stay in the gallery.`, { ok: "Delete", danger: true })) return;
  try { await api(`/boards/${board.id}`, { method: "DELETE" }); $("filter-board").value = ""; await loadBoards(); first(); } catch (err) { showError(err); }
});

// The search starts at once; the board and model lists arrive beside it (unless the address filters by them).
const lists = Promise.all([loadBoards(), loadModels()]).catch(showError);
if (start.get("board") || start.get("model")) {
  lists.finally(() => {
    if (start.get("board")) $("filter-board").value = start.get("board");
    if (start.get("model")) $("filter-model").value = start.get("model");
    first();
  });
} else first();
