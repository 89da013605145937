// The queue: queued and running jobs in claim order with places in line; everyone's for queue:all, with cancel.

import { api, confirmAction, h, showError, toast } from "./api.js";
import { formatDuration, jobLabel } from "./jobcard.js";

const $ = (id) => document.getElementById(id);
let scope = "mine";

function row(entry) {
  const since = Date.parse(entry.started_at || entry.queued_at);
  const progress = entry.progress.max ? `step ${entry.progress.value}/${entry.progress.max}` : "";
  return h("tr", { "data-job-id": entry.id, "data-status": entry.status },
    h("td", { class: "position" }, entry.position ?? "—"),
    h("td", {}, h("span", { class: `badge ${entry.status}` }, entry.cancel_requested ? "cancelling" : entry.status)),
    h("td", {}, entry.owner),
    h("td", { class: "clip", title: jobLabel(entry) }, jobLabel(entry)),
    h("td", {}, entry.model || ""), h("td", {}, entry.endpoint || ""), h("td", {}, progress),
    h("td", {}, formatDuration((Date.now() - since) / 1000)),
    h("td", {}, entry.can_cancel && !entry.cancel_requested && h("button", { class: "small danger", type: "button",
      "aria-label": `Cancel ${entry.owner}'s job ${jobLabel(entry)}`, onclick: async () => {
        if (entry.owner !== document.body.dataset.username
            && !await confirmAction(`Cancel ${entry.owner}'s job?`, { ok: "Cancel the job", danger: true })) return;
        try { await api(`/queue/${entry.id}/cancel`, { method: "POST" }); toast("Cancelled"); load(); } catch (err) { showError(err); }
      } }, "Cancel")));
}

async function load() {
  try {
    const view = await api(`/queue?scope=${scope}`);
    $("queue-totals").textContent = `${view.queued} queued · ${view.running} running across the fleet`;
    $("queue").replaceChildren(...view.items.map(row));
    if (!view.items.length) $("queue").append(h("tr", {}, h("td", { colspan: 9, class: "muted" },
      scope === "everyone" ? "Nothing is queued or running." : "None of your jobs is queued or running.")));
  } catch (err) { showError(err); }
  document.body.dataset.ready = "yes";
}

for (const tab of document.querySelectorAll("[role=tab][data-scope]")) {
  tab.addEventListener("click", () => {
    scope = tab.dataset.scope;
    for (const t of document.querySelectorAll("[role=tab][data-scope]")) t.setAttribute("aria-selected", String(t === tab));
    load();
  });
}
load();
setInterval(load, 2000);
