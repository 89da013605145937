// Inline field checks with the server's limits (GET /generation/options): the message sits under the field,
// the field is marked aria-invalid, and sizes snap to the multiple the server wants.

const LABELS = { width: "Width", height: "Height", steps: "Steps", cfg_scale: "CFG scale", batch_size: "Batch size",
  n_iter: "Batch count", seed: "Seed", denoising_strength: "Denoising strength", mask_blur: "Mask blur" };

function messageBox(input) {
  const id = `${input.id}-error`;
  let box = document.getElementById(id);
  if (!box) {
    box = document.createElement("p");
    box.id = id;
    box.className = "field-error";
    box.setAttribute("role", "alert");
    input.insertAdjacentElement("afterend", box);
    const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
    input.setAttribute("aria-describedby", [...described, id].join(" "));
  }
  return box;
}

/** Show `message` under the field (or clear it when empty). */
export function markField(input, message) {
  if (message) {
    messageBox(input).textContent = message;
    input.setAttribute("aria-invalid", "true");
  } else {
    input.removeAttribute("aria-invalid");
    const box = document.getElementById(`${input.id}-error`);
    if (box) box.textContent = "";
  }
}

/** Put the server's limits on the number inputs (min, max, step) so the browser and the checks agree. */
export function applyLimits(form, limits) {
  for (const [name, limit] of Object.entries(limits)) {
    const input = form.querySelector(`input[name="${name}"]`);
    if (!input || input.type === "range") continue;
    input.min = String(limit.min);
    input.max = String(limit.max);
    if (limit.multiple_of) input.step = String(limit.multiple_of);
  }
}

/** What is wrong with a number field's value under `limit`, or "". */
export function problem(name, raw, limit) {
  const label = LABELS[name] || name;
  if (raw === "" || raw === null || raw === undefined) return `${label} is required`;
  const value = Number(raw);
  if (!Number.isFinite(value)) return `${label} must be a number`;
  if (limit.integer && !Number.isInteger(value)) return `${label} must be a whole number`;
  if (value < limit.min || value > limit.max) return `${label} must be between ${limit.min} and ${limit.max}`;
  if (limit.multiple_of && value % limit.multiple_of) return `${label} must be a multiple of ${limit.multiple_of}`;
  return "";
}

/** Round a size to the nearest allowed multiple inside the limits; leaves empty or non-numbers alone. */
export function snap(raw, limit) {
  const value = Number(raw);
  if (raw === "" || !Number.isFinite(value) || !limit.multiple_of) return raw;
  const step = limit.multiple_of;
  const rounded = Math.round(value / step) * step;
  return String(Math.min(Math.floor(limit.max / step) * step, Math.max(Math.ceil(limit.min / step) * step, rounded)));
}

/** Check one field; returns its message ("" when fine) and shows it. */
export function checkField(input, limits) {
  const limit = limits[input.name];
  if (!limit) return "";
  const message = problem(input.name, input.value.trim(), limit);
  markField(input, message);
  return message;
}

/** Map a server error (`details.field` such as `params.width`) to the form field it names. */
export function fieldOfError(form, err) {
  const field = err && err.details && err.details.field;
  if (!field) return null;
  const name = String(field).replace(/^params\./, "").replace(/^override_settings\.sd_model_checkpoint$/, "model");
  return form.querySelector(`[name="${CSS.escape(name)}"]`);
}
