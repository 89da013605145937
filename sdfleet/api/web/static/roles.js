// Who may see something: "Everyone" or a set of roles, as checkboxes (never a free-text list).

import { h, listAll } from "./api.js";
import { markField } from "./fields.js";

export const EVERYONE = "*";
let rolesPromise = null;

function roleNames() {
  rolesPromise = rolesPromise || listAll("/roles").then((roles) => roles.map((r) => r.name)).catch(() => []);
  return rolesPromise;
}

export class RolePicker {
  constructor(fieldset, prefix) {
    this.fieldset = fieldset;
    this.prefix = prefix;
    fieldset.addEventListener("change", () => this.#sync());
  }

  /** Draw the boxes with `selected` checked (["*"] = everyone). */
  async render(selected = [EVERYONE]) {
    const names = await roleNames();
    const box = (value, text) => {
      const id = `${this.prefix}-${value === EVERYONE ? "everyone" : value.replace(/[^a-z0-9_-]/gi, "-")}`;
      return h("label", { for: id }, h("input", { type: "checkbox", id, value, checked: selected.includes(value) }), text);
    };
    this.fieldset.replaceChildren(this.fieldset.querySelector("legend"), box(EVERYONE, "Everyone"),
      ...names.map((n) => box(n, n)));
    this.#sync();
  }

  #sync() {
    const everyone = this.fieldset.querySelector(`input[value="${EVERYONE}"]`);
    for (const input of this.fieldset.querySelectorAll("input")) {
      if (input !== everyone) input.disabled = everyone.checked;
    }
    markField(this.fieldset, "");
  }

  /** The chosen roles, or null (with a message under the boxes) when nothing is chosen. */
  value() {
    const everyone = this.fieldset.querySelector(`input[value="${EVERYONE}"]`);
    if (everyone.checked) return [EVERYONE];
    const roles = [...this.fieldset.querySelectorAll("input:checked")].map((i) => i.value);
    if (!roles.length) {
      markField(this.fieldset, "Choose Everyone or at least one role");
      everyone.focus();
      return null;
    }
    return roles;
  }
}
