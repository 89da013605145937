// "PNG in, parameters out": turn what /sdapi/v1/png-info reads from a PNG (an A1111 or sdfleet infotext,
// or a ComfyUI API graph in the `prompt` chunk) into generate-form values.

const INFOTEXT_FIELDS = { Steps: "steps", "CFG scale": "cfg_scale", Seed: "seed", "Size-1": "width", "Size-2": "height",
  "Denoising strength": "denoising_strength", "Mask blur": "mask_blur" };

function fromInfotext(p) {
  const values = { prompt: p.Prompt || "", negative_prompt: p["Negative prompt"] || "" };
  for (const [key, name] of Object.entries(INFOTEXT_FIELDS)) if (p[key] !== undefined) values[name] = String(p[key]);
  if (p.Sampler) values.sampler_name = String(p.Sampler);
  if (p["Schedule type"]) values.scheduler_label = String(p["Schedule type"]);
  if (p.Model) values.model_name = String(p.Model);
  if (p["Model hash"]) values.model_hash = String(p["Model hash"]);
  return values;
}

function linked(graph, ref) {
  return Array.isArray(ref) ? graph[String(ref[0])] : null;
}

function fromComfyGraph(graph) {
  const nodes = Object.values(graph).filter((n) => n && typeof n === "object");
  const sampler = nodes.find((n) => n.class_type === "KSampler" || n.class_type === "KSamplerAdvanced");
  if (!sampler) return null;
  const inp = sampler.inputs || {};
  const values = {};
  const text = (ref) => { const node = linked(graph, ref); return node && typeof node.inputs?.text === "string" ? node.inputs.text : ""; };
  values.prompt = text(inp.positive);
  values.negative_prompt = text(inp.negative);
  for (const [key, name] of [["steps", "steps"], ["cfg", "cfg_scale"], ["seed", "seed"], ["noise_seed", "seed"]]) {
    if (typeof inp[key] === "number") values[name] = String(inp[key]);
  }
  if (typeof inp.sampler_name === "string") values.comfy_sampler = inp.sampler_name;
  if (typeof inp.scheduler === "string") values.scheduler_value = inp.scheduler;
  const latent = nodes.find((n) => n.class_type === "EmptyLatentImage");
  if (latent) { values.width = String(latent.inputs.width); values.height = String(latent.inputs.height); }
  const loader = nodes.find((n) => n.class_type === "CheckpointLoaderSimple");
  if (loader && typeof loader.inputs.ckpt_name === "string") values.model_name = loader.inputs.ckpt_name;
  return values;
}

/** Form values from a png-info answer, or null when the PNG carries no generation parameters. */
export function valuesFromPngInfo(info) {
  if (info.parameters && Object.keys(info.parameters).length) return fromInfotext(info.parameters);
  if (info.items && typeof info.items.prompt === "string") {
    try { return fromComfyGraph(JSON.parse(info.items.prompt)); } catch { return null; }
  }
  return null;
}
