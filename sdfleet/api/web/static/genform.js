// The generate form's values: read them, put them back (reuse, remembered settings, PNG info), check them.

import { h } from "./api.js";
import { checkField, markField, snap } from "./fields.js";

const $ = (id) => document.getElementById(id);
export const NUMBER_FIELDS = ["steps", "cfg_scale", "width", "height", "seed", "batch_size", "n_iter",
  "denoising_strength", "mask_blur"];
/** What is remembered between visits (on the server, with the user's preferences). */
export const REMEMBERED = ["prompt", "negative_prompt", "model", "sampler_name", "scheduler", "endpoint", "steps",
  "cfg_scale", "width", "height", "batch_size", "n_iter", "denoising_strength", "mask_blur"];

export function mode() { return document.querySelector("input[name=mode]:checked").value; }

export function setMode(value) {
  const radio = $(`mode-${value}`);
  if (radio) radio.checked = true;
}

/** The form's current values by field name (strings, as the inputs hold them). */
export function readValues() {
  const values = {};
  for (const name of REMEMBERED) {
    const input = document.querySelector(`#gen-form [name="${name}"]`);
    if (input) values[name] = input.value;
  }
  return values;
}

function setInput(name, value) {
  const input = document.querySelector(`#gen-form [name="${name}"]`);
  if (!input || value === undefined || value === null) return;
  if (input.type === "checkbox") input.checked = Boolean(value);
  else input.value = String(value);
  input.dispatchEvent(new Event("input", { bubbles: true }));
  markField(input, "");
}

function setSelect(select, value) {
  if (value === undefined || value === null || value === "") return;
  if (![...select.options].some((o) => o.value === String(value))) select.append(h("option", { value }, value));
  select.value = String(value);
}

/** The A1111 sampler name for a stored one ("DPM++ 2M Karras" → DPM++ 2M + Karras; "euler" → Euler). */
export function resolveSampler(options, stored) {
  const names = options.samplers.map((s) => s.name);
  if (names.includes(stored)) return { sampler: stored, suffix: null };
  const byComfy = options.samplers.find((s) => s.comfy === stored);
  if (byComfy) return { sampler: byComfy.name, suffix: null };
  for (const sched of options.schedulers) {
    if (stored.endsWith(` ${sched.name}`) && names.includes(stored.slice(0, -sched.name.length - 1))) {
      return { sampler: stored.slice(0, -sched.name.length - 1), suffix: sched.name };
    }
  }
  return { sampler: stored, suffix: null };
}

/** The schedule-type label for a stored scheduler: a label as sent, or the ComfyUI value a job records. */
export function schedulerLabel(options, sampler, stored) {
  if (!stored) return "Automatic";
  if (stored === "Automatic" || options.schedulers.some((s) => s.name === stored)) return stored;
  const auto = options.samplers.find((s) => s.name === sampler);
  if (auto && auto.automatic_scheduler === stored) return "Automatic";
  const byValue = options.schedulers.find((s) => s.value === stored);
  if (byValue) return byValue.name;
  const byName = options.schedulers.find((s) => s.name.toLowerCase() === String(stored).toLowerCase());
  return byName ? byName.name : "Automatic";
}

/** Put values (reuse, remembered settings, PNG info) into the form; unknown models are kept as they are. */
export function applyValues(values, { options, picker }) {
  for (const name of NUMBER_FIELDS) setInput(name, values[name]);
  for (const name of ["prompt", "negative_prompt"]) if (values[name] !== undefined) setInput(name, values[name]);
  if (values.inpainting_mask_invert !== undefined) $("inpainting_mask_invert").checked = Boolean(values.inpainting_mask_invert);
  if (values.inpaint_full_res !== undefined) $("inpaint_full_res").checked = Boolean(values.inpaint_full_res);
  if (values.inpaint_full_res_padding !== undefined && values.inpaint_full_res_padding !== null) {
    $("inpaint_full_res_padding").value = String(values.inpaint_full_res_padding);
    $("inpaint_full_res_padding").dispatchEvent(new Event("input"));
  }
  if (values.sampler_name) {
    const { sampler, suffix } = resolveSampler(options, String(values.sampler_name));
    setSelect($("sampler"), sampler);
    const stored = values.scheduler ?? (suffix || null);
    $("scheduler").value = schedulerLabel(options, sampler, stored);
  } else if (values.scheduler !== undefined) {
    $("scheduler").value = schedulerLabel(options, $("sampler").value, values.scheduler);
  }
  if (values.model && picker.has(values.model)) {
    picker.value = values.model;
    picker.onChange(values.model);
  }
  if (values.endpoint) setSelect($("endpoint"), values.endpoint);
}

/** Check every field against the server's limits and the work limit; focus the first bad one. */
export function checkForm(form, options) {
  const limits = options.limits;
  let first = null;
  for (const name of NUMBER_FIELDS) {
    const input = form.querySelector(`[name="${name}"]`);
    if (!input || input.type === "range" || input.closest("[hidden]")) continue;
    if (checkField(input, limits) && !first) first = input;
  }
  if (!first) {
    const num = (id) => Number($(id).value);
    const work = Math.max(num("width") * num("height") * num("batch_size"), 1024 * 1024) * num("steps") * num("n_iter");
    if (work > options.max_work_per_request) {
      first = $("batch_size");
      markField(first, "Too much work for one request: lower the size, steps, batch size or batch count");
    }
  }
  if (first) first.focus();
  return !first;
}

/** Snap width/height to the server's multiple when the user leaves the field. */
export function snapSize(input, options) {
  const limit = options.limits[input.name];
  if (!limit) return;
  const snapped = snap(input.value.trim(), limit);
  if (snapped !== input.value) input.value = snapped;
  checkField(input, options.limits);
}
