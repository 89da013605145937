// Resumable model uploads: the upload id is kept in localStorage per file identity, so a reload resumes.

import { api } from "./api.js";

const STORE = "sdfleet.uploads";

function fileKey(file) { return `${file.name}|${file.size}|${file.lastModified}`; }
function saved() { try { return JSON.parse(localStorage.getItem(STORE) || "{}"); } catch { return {}; } }
function save(all) { localStorage.setItem(STORE, JSON.stringify(all)); }

/** The unfinished uploads remembered in this browser: [{key, upload_id, filename}]. */
export function pendingUploads() {
  return Object.entries(saved()).map(([key, value]) => ({ key, ...value }));
}

/** Upload `file`, resuming a remembered upload of the same file; onProgress(done, total, resumed). */
export async function uploadModel(file, { type, allowedRoles, onProgress }) {
  const key = fileKey(file);
  const all = saved();
  let upload = null;
  let resumed = false;
  if (all[key]) {
    try {
      upload = await api(`/checkpoints/uploads/${all[key].upload_id}`);
      if (upload.status !== "open") upload = null;
      else resumed = true;
    } catch { upload = null; }
  }
  if (!upload) {
    const body = { filename: file.name, type, size: file.size };
    if (allowedRoles && allowedRoles.length) body.allowed_roles = allowedRoles;
    upload = await api("/checkpoints/uploads", { method: "POST", json: body });
    all[key] = { upload_id: upload.upload_id, filename: file.name };
    save(all);
  }
  const missing = new Set(upload.missing_parts);
  let done = (upload.part_count - missing.size) * upload.part_size;
  onProgress(Math.min(done, file.size), file.size, resumed);
  for (let n = 1; n <= upload.part_count; n += 1) {
    if (!missing.has(n)) continue;
    const start = (n - 1) * upload.part_size;
    const blob = file.slice(start, Math.min(file.size, start + upload.part_size));
    await api(`/checkpoints/uploads/${upload.upload_id}/parts/${n}`, {
      method: "PUT", body: blob, headers: { "Content-Type": "application/octet-stream" } });
    done += blob.size;
    onProgress(Math.min(done, file.size), file.size, resumed);
  }
  const checkpoint = await api(`/checkpoints/uploads/${upload.upload_id}/complete`, { method: "POST", json: {} });
  const after = saved();
  delete after[key];
  save(after);
  return checkpoint;
}
