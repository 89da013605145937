// API keys (everyone), users (user:all) and roles (role:all), with paging.

import { api, can, h, listAll, Pager, showError, toast, formatTime } from "./api.js";

const $ = (id) => document.getElementById(id);
const PAGE = 20;

// 1. Tabs
const tabs = [...document.querySelectorAll("[role=tab]")];
function select(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
}
for (const [i, tab] of tabs.entries()) {
  tab.addEventListener("click", () => select(tab));
  tab.addEventListener("keydown", (e) => {
    const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (step) { const next = tabs[(i + step + tabs.length) % tabs.length]; select(next); next.focus(); }
  });
}

function checkboxes(container, names, checked = [], prefix = "c") {
  container.replaceChildren(container.querySelector("legend") || "", ...names.map((name) => {
    const id = `${prefix}-${name.replace(/[^a-z0-9]/gi, "-")}`;
    return h("label", { for: id }, h("input", { type: "checkbox", id, value: name, checked: checked.includes(name) }), name);
  }));
}
const checkedValues = (container) => [...container.querySelectorAll("input:checked")].map((i) => i.value);

/** A small modal editor: checkboxes (and optional extra fields); resolves with the values or null. */
function edit(title, names, checked, extra = []) {
  const dialog = $("edit-dialog");
  $("edit-title").textContent = title;
  checkboxes($("edit-checks"), names, checked, "edit");
  $("edit-extra").replaceChildren(...extra);
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "save" ? checkedValues($("edit-checks")) : null),
      { once: true });
  });
}

// 2. API keys
async function loadKeys() {
  try {
    const keys = await listAll("/api-keys");
    $("keys").replaceChildren(...keys.map((k) => h("tr", { "data-key-id": k.id },
      h("td", {}, k.name), h("td", { class: "mono" }, `${k.prefix}…`), h("td", {}, formatTime(k.created_at)),
      h("td", {}, k.last_used_at ? formatTime(k.last_used_at) : "never"),
      h("td", {}, h("button", { class: "small danger", type: "button", onclick: async () => {
        if (!confirm(`Revoke the key "${k.name}"?`)) return;
        try { await api(`/api-keys/${k.id}`, { method: "DELETE" }); toast("Key revoked"); loadKeys(); } catch (err) { showError(err); }
      } }, "Revoke")))));
    if (!keys.length) $("keys").append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No keys yet.")));
  } catch (err) { showError(err); }
}
$("key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const created = await api("/api-keys", { method: "POST", json: { name: $("key-name").value } });
    $("key-secret").textContent = created.key;
    $("key-created").hidden = false;
    $("key-name").value = "";
    loadKeys();
  } catch (err) { showError(err); }
});
$("key-copy").addEventListener("click", async () => {
  try { await navigator.clipboard.writeText($("key-secret").textContent); toast("Copied"); } catch { toast("Select the key and copy it"); }
});

// 3. Users
let roleNames = [];
const users = new Pager((cursor) => api(`/users?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`));

function renderUsers(page) {
  $("users").replaceChildren(...page.items.map((u) => h("tr", { "data-username": u.username },
    h("td", {}, u.username), h("td", {}, u.roles.join(", ")), h("td", {}, u.email || ""),
    h("td", {}, h("span", { class: `badge ${u.disabled ? "error" : "ready"}` }, u.disabled ? "disabled" : "active")),
    h("td", {},
      h("button", { class: "small", type: "button", onclick: () => editUser(u) }, "Edit"),
      h("button", { class: "small danger", type: "button", onclick: async () => {
        if (!confirm(`Delete the user ${u.username}?`)) return;
        try { await api(`/users/${encodeURIComponent(u.username)}`, { method: "DELETE" }); renderUsers(await users.reload()); } catch (err) { showError(err); }
      } }, "Delete")))));
  $("users-prev").disabled = !users.hasPrev;
  $("users-next").disabled = !users.next;
}

async function editUser(u) {
  const disabled = h("label", { for: "edit-disabled" }, h("input", { type: "checkbox", id: "edit-disabled", checked: u.disabled }), " Disabled");
  const password = h("div", {}, h("label", { for: "edit-password" }, "New password (optional)"),
    h("input", { id: "edit-password", type: "password", autocomplete: "new-password" }));
  const roles = await edit(`Roles of ${u.username}`, roleNames, u.roles, [disabled, password]);
  if (roles === null) return;
  const body = { roles, disabled: $("edit-disabled").checked };
  if ($("edit-password").value) body.password = $("edit-password").value;
  try {
    await api(`/users/${encodeURIComponent(u.username)}`, { method: "PATCH", json: body });
    toast(`Updated ${u.username}`);
    renderUsers(await users.reload());
  } catch (err) { showError(err); }
}

async function setupUsers() {
  try { roleNames = (await listAll("/roles")).map((r) => r.name); } catch { roleNames = []; }
  checkboxes($("new-user-roles"), roleNames, [], "new-user-role");
  $("user-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { username: $("new-username").value, password: $("new-password").value, roles: checkedValues($("new-user-roles")) };
    if ($("new-email").value) body.email = $("new-email").value;
    try {
      await api("/users", { method: "POST", json: body });
      toast(`Created ${body.username}`);
      e.target.reset();
      renderUsers(await users.first());
    } catch (err) { showError(err); }
  });
  $("users-prev").addEventListener("click", async () => renderUsers(await users.back()));
  $("users-next").addEventListener("click", async () => renderUsers(await users.forward()));
  renderUsers(await users.first());
}

// 4. Roles
let permissionNames = [];
const roles = new Pager((cursor) => api(`/roles?limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`));

function renderRoles(page) {
  $("roles").replaceChildren(...page.items.map((r) => h("tr", { "data-role-name": r.name },
    h("td", {}, r.name, r.builtin ? h("span", { class: "badge" }, " built-in") : ""),
    h("td", {}, r.permissions.join(", ")), h("td", {}, r.description),
    h("td", {},
      h("button", { class: "small", type: "button", onclick: () => editRole(r) }, "Edit"),
      !r.builtin && h("button", { class: "small danger", type: "button", onclick: async () => {
        if (!confirm(`Delete the role ${r.name}?`)) return;
        try { await api(`/roles/${encodeURIComponent(r.name)}`, { method: "DELETE" }); renderRoles(await roles.reload()); } catch (err) { showError(err); }
      } }, "Delete")))));
  $("roles-prev").disabled = !roles.hasPrev;
  $("roles-next").disabled = !roles.next;
}

async function editRole(r) {
  const permissions = await edit(`Permissions of ${r.name}`, permissionNames, r.permissions);
  if (permissions === null) return;
  try {
    await api(`/roles/${encodeURIComponent(r.name)}`, { method: "PATCH", json: { permissions } });
    toast(`Updated ${r.name}`);
    renderRoles(await roles.reload());
  } catch (err) { showError(err); }
}

async function setupRoles() {
  try { permissionNames = (await api("/permissions")).map((p) => p.name); } catch (err) { showError(err); }
  checkboxes($("new-role-permissions"), permissionNames, [], "new-role-perm");
  $("role-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: $("new-role").value, description: $("new-role-description").value,
                   permissions: checkedValues($("new-role-permissions")) };
    try {
      await api("/roles", { method: "POST", json: body });
      toast(`Created role ${body.name}`);
      e.target.reset();
      renderRoles(await roles.first());
      if (can("user:all")) {
        roleNames = (await listAll("/roles")).map((x) => x.name);
        checkboxes($("new-user-roles"), roleNames, [], "new-user-role");
      }
    } catch (err) { showError(err); }
  });
  $("roles-prev").addEventListener("click", async () => renderRoles(await roles.back()));
  $("roles-next").addEventListener("click", async () => renderRoles(await roles.forward()));
  renderRoles(await roles.first());
}

loadKeys();
if (can("user:all")) setupUsers().catch(showError);
if (can("role:all")) setupRoles().catch(showError);
