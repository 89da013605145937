// Prompt history (from your jobs), styles (yours and the team's, A1111's rules) and presets (saved settings).

import { api, confirmAction, debounce, h, showError, toast } from "./api.js";
import { markField } from "./fields.js";

const $ = (id) => document.getElementById(id);

/** A1111's rule: a style with {prompt} wraps the prompt; otherwise it is appended after ", ". */
export function mergePrompt(styleText, prompt) {
  if (styleText.includes("{prompt}")) return styleText.replaceAll("{prompt}", prompt);
  return [prompt.trim(), styleText.trim()].filter(Boolean).join(", ");
}

/** Wire the three dialogs; `readValues()` gives the form's values, `applyValues(values)` puts some back. */
export function setupPromptTools({ readValues, applyValues }) {
  // 1. History
  async function loadHistory() {
    const q = $("history-search").value.trim();
    try {
      const items = await api(`/me/prompts?limit=50${q ? `&q=${encodeURIComponent(q)}` : ""}`);
      $("history-list").replaceChildren(...items.map((item) => h("li", {},
        h("button", { type: "button", class: "tool-item", "data-role": "history-item", onclick: () => {
          applyValues({ prompt: item.prompt, negative_prompt: item.negative_prompt });
          $("history-dialog").close();
          $("prompt").focus();
        } }, h("span", {}, item.prompt), item.negative_prompt ? h("span", { class: "muted" }, ` — ${item.negative_prompt}`) : null))));
      if (!items.length) $("history-list").append(h("li", { class: "muted" }, q ? "No prompt matches." : "No prompts yet."));
    } catch (err) { showError(err); }
  }
  $("open-history").addEventListener("click", () => { $("history-search").value = ""; loadHistory(); $("history-dialog").showModal(); });
  $("history-search").addEventListener("input", debounce(loadHistory, 250));

  // 2. Styles
  let styles = [];
  async function loadStyles() {
    try {
      styles = (await api("/styles")).items;
      $("styles-list").replaceChildren(...styles.map((s) => {
        const id = `style-${s.id}`;
        return h("li", { class: "tool-row", "data-style": s.name },
          h("label", { for: id, class: "inline" }, h("input", { type: "checkbox", id, value: s.id }), s.name),
          s.scope === "team" ? h("span", { class: "badge" }, "team") : null,
          h("span", { class: "muted clip", title: s.prompt }, s.prompt || s.negative_prompt),
          s.editable ? h("button", { type: "button", class: "small danger", "aria-label": `Delete the style ${s.name}`,
            onclick: async () => {
              if (!await confirmAction(`Delete the style ${s.name}?`, { ok: "Delete", danger: true })) return;
              try { await api(`/styles/${s.id}`, { method: "DELETE" }); loadStyles(); } catch (err) { showError(err); }
            } }, "Delete") : null);
      }));
      if (!styles.length) $("styles-list").append(h("li", { class: "muted" }, "No styles yet: save one below."));
    } catch (err) { showError(err); }
  }
  $("open-styles").addEventListener("click", () => { loadStyles(); $("styles-dialog").showModal(); });
  $("styles-apply").addEventListener("click", () => {
    const checked = [...$("styles-list").querySelectorAll("input:checked")].map((i) => styles.find((s) => s.id === i.value));
    let { prompt, negative_prompt: negative } = readValues();
    for (const style of checked) {
      prompt = mergePrompt(style.prompt, prompt);
      negative = mergePrompt(style.negative_prompt, negative);
    }
    applyValues({ prompt, negative_prompt: negative });
    $("styles-dialog").close();
    toast(`Applied ${checked.length} style(s)`);
  });
  $("style-save").addEventListener("click", async () => {
    const name = $("style-name").value.trim();
    if (!name) { markField($("style-name"), "Give the style a name"); return; }
    const { prompt, negative_prompt: negative } = readValues();
    try {
      await api("/styles", { method: "POST", json: { name, prompt, negative_prompt: negative,
        scope: $("style-team")?.checked ? "team" : "user" } });
      $("style-name").value = "";
      markField($("style-name"), "");
      toast(`Style ${name} saved`);
      loadStyles();
    } catch (err) { markField($("style-name"), err.message); }
  });

  // 3. Presets
  async function loadPresets() {
    try {
      const presets = (await api("/presets")).items;
      $("presets-list").replaceChildren(...presets.map((p) => h("li", { class: "tool-row", "data-preset": p.name },
        h("button", { type: "button", class: "tool-item", onclick: () => {
          applyValues(p.values);
          $("presets-dialog").close();
          toast(`Preset ${p.name} loaded`);
        } }, p.name),
        h("span", { class: "muted clip" }, Object.entries(p.values).filter(([k]) => !k.includes("prompt"))
          .map(([k, v]) => `${k} ${v}`).join(" · ")),
        h("button", { type: "button", class: "small danger", "aria-label": `Delete the preset ${p.name}`, onclick: async () => {
          try { await api(`/presets/${p.id}`, { method: "DELETE" }); loadPresets(); } catch (err) { showError(err); }
        } }, "Delete"))));
      if (!presets.length) $("presets-list").append(h("li", { class: "muted" }, "No presets yet: save the current settings below."));
    } catch (err) { showError(err); }
  }
  $("open-presets").addEventListener("click", () => { loadPresets(); $("presets-dialog").showModal(); });
  $("preset-save").addEventListener("click", async () => {
    const name = $("preset-name").value.trim();
    if (!name) { markField($("preset-name"), "Give the preset a name"); return; }
    const { prompt: _p, negative_prompt: _n, ...values } = readValues();
    try {
      await api("/presets", { method: "POST", json: { name, values } });
      $("preset-name").value = "";
      markField($("preset-name"), "");
      toast(`Preset ${name} saved`);
      loadPresets();
    } catch (err) { markField($("preset-name"), err.message); }
  });
}
