// The theme toggle: system → light → dark → system, kept in the user's preferences on the server.

import { api, showError } from "./api.js";

const ORDER = ["system", "light", "dark"];
const button = document.getElementById("theme-toggle");

function apply(choice) {
  if (choice === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = choice;
  button.dataset.themeChoice = choice;
  button.setAttribute("aria-label", `Theme: ${choice}`);
  button.title = `Theme: ${choice} (click to change)`;
}

if (button) {
  button.addEventListener("click", async () => {
    const next = ORDER[(ORDER.indexOf(button.dataset.themeChoice) + 1) % ORDER.length];
    apply(next);
    try { await api("/me/preferences", { method: "PATCH", json: { theme: next } }); } catch (err) { showError(err); }
  });
}
