// The model picker: a button showing the full `name [hash]`, opening a searchable list with previews,
// architecture, trigger words and notes. The chosen name lives in a hidden input.

import { h } from "./api.js";

export function modelTitle(model) {
  return `${model.name} [${model.short_hash}]`;
}

function matches(model, words) {
  const text = [model.name, model.short_hash, model.sha256, model.architecture, model.trigger_words, model.notes]
    .filter(Boolean).join(" ").toLowerCase();
  return words.every((w) => text.includes(w));
}

export class ModelPicker {
  constructor({ button, title, input, dialog, search, list, onChange = () => {} }) {
    Object.assign(this, { button, title, input, dialog, search, list, onChange });
    this.models = [];
    this.visible = [];
    this.active = 0;
    button.addEventListener("click", () => this.open());
    search.addEventListener("input", () => { this.active = 0; this.render(); });
    search.addEventListener("keydown", (e) => this.#key(e));
    list.addEventListener("click", (e) => {
      const item = e.target.closest("[role=option]");
      if (item) this.choose(item.dataset.name);
    });
  }

  setModels(models) {
    this.models = models;
    if (!models.some((m) => m.name === this.input.value)) this.value = models.length ? models[0].name : "";
    else this.value = this.input.value;
    this.button.dataset.count = String(models.length);
  }

  get value() { return this.input.value; }

  set value(name) {
    this.input.value = name || "";
    const model = this.models.find((m) => m.name === name);
    const text = model ? modelTitle(model) : (name || "No models yet");
    const preview = model && model.preview_url ? h("img", { src: model.preview_url, alt: "" }) : null;
    this.title.textContent = text;
    this.button.replaceChildren(...[preview, this.title].filter(Boolean));
    this.button.title = model && model.trigger_words ? `Trigger words: ${model.trigger_words}` : text;
  }

  has(name) { return this.models.some((m) => m.name === name); }

  open() {
    this.search.value = "";
    this.active = Math.max(0, this.models.findIndex((m) => m.name === this.value));
    this.render();
    this.dialog.showModal();
    this.search.focus();
  }

  choose(name) {
    this.value = name;
    if (this.dialog.open) this.dialog.close();
    this.button.focus();
    this.onChange(name);
  }

  render() {
    const words = this.search.value.toLowerCase().split(/\s+/).filter(Boolean);
    this.visible = this.models.filter((m) => matches(m, words));
    this.active = Math.min(this.active, Math.max(0, this.visible.length - 1));
    this.list.replaceChildren(...this.visible.map((m, i) => h("li", {
      role: "option", id: `model-opt-${i}`, class: "model-option", "data-name": m.name,
      "aria-selected": String(i === this.active) },
    m.preview_url ? h("img", { src: m.preview_url, alt: "", loading: "lazy" }) : h("span", { class: "noimg", "aria-hidden": "true" }),
    h("div", {}, h("div", { class: "title" }, modelTitle(m)),
      h("div", { class: "meta" }, [m.architecture, m.trigger_words && `Trigger: ${m.trigger_words}`, m.notes]
        .filter(Boolean).join(" · "))))));
    if (!this.visible.length) this.list.append(h("li", { class: "muted" }, "No model matches."));
    this.search.setAttribute("aria-activedescendant", this.visible.length ? `model-opt-${this.active}` : "");
    this.list.querySelector("[aria-selected=true]")?.scrollIntoView({ block: "nearest" });
  }

  #key(e) {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const step = e.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.visible.length) % Math.max(1, this.visible.length);
      this.render();
    } else if (e.key === "Enter") {
      e.preventDefault();
      if (this.visible[this.active]) this.choose(this.visible[this.active].name);
    }
  }
}
