// sdfleet's ComfyUI frontend extension: sdfleet's templates on first open and in a menu, and publishing.
const app = window.comfyAPI.app.app;
const api = window.comfyAPI.api.api;

async function fetchJson(route, options) {
  const response = await api.fetchApi(route, options);
  if (!response.ok) throw new Error(`${route}: ${response.status}`);
  return response.json();
}

const templates = await fetchJson("/sdfleet/templates").catch(() => []);
window.sdfleetTemplates = templates;

async function openTemplate(template) {
  if (template.ui_graph) await app.loadGraphData(template.ui_graph, true, true, template.title);
  else await app.loadApiJson(template.graph, template.title);
}
window.sdfleetOpenTemplate = async (name) => openTemplate(templates.find((t) => t.name === name) ?? templates[0]);

async function graphIsUsable() {
  const nodes = app.graph?._nodes ?? [];
  if (nodes.length === 0) return false;
  const defs = await fetchJson("/object_info").catch(() => ({}));
  return nodes.every((node) => node.type in defs || node.type === "Note" || node.type === "Reroute"
    || node.type === "PrimitiveNode" || node.type === "MarkdownNote");
}

function exposedInputs(prompt) {
  const inputs = [];
  for (const [id, node] of Object.entries(prompt)) {
    const values = node.inputs ?? {};
    if (node.class_type === "CLIPTextEncode" && typeof values.text === "string") {
      const name = inputs.some((i) => i.name === "prompt") ? `prompt_${id}` : "prompt";
      inputs.push({ name, node: id, input: "text", label: node._meta?.title ?? name, type: "string", default: values.text });
    }
    if (node.class_type === "KSampler" && Number.isInteger(values.seed) && !inputs.some((i) => i.name === "seed")) {
      inputs.push({ name: "seed", node: id, input: "seed", label: "Seed", type: "int", default: values.seed, min: 0 });
    }
  }
  return inputs;
}

function appName() {
  const filename = app.extensionManager?.workflow?.activeWorkflow?.filename ?? "";
  return filename.replace(/\.app$/, "");
}

// Publishing: the App Builder's selection (`extra.linearData`) is what artists may change; the server reads it
// from the workflow. Without a selection, the prompts and the seed are exposed.
async function publish() {
  const name = window.prompt("Publish this workflow to sdfleet as the app:", appName());
  if (!name) return;
  const description = window.prompt("Description for artists:", "") ?? "";
  const roles = window.prompt("Roles that may run it (comma-separated; empty: every artist):", "") ?? "";
  const approval = window.confirm("Hold this version until an admin or another lead artist approves it?");
  const { output, workflow } = await app.graphToPrompt();
  const selected = workflow.extra?.linearData?.inputs?.length > 0;
  const response = await api.fetchApi("/sdfleet/workflows", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name, description, graph: output, ui_graph: workflow, requires_approval: approval,
      allowed_roles: roles.split(",").map((r) => r.trim()).filter(Boolean),
      ...(selected ? {} : { inputs: exposedInputs(output) }) }),
  });
  const body = await response.json().catch(() => ({}));
  window.alert(response.ok ? `Published ${body.name} version ${body.version}`
    + (body.approved === false ? " (waiting for approval)" : "")
    : `Not published: ${body.error?.message ?? response.status}`);
}

const commands = templates.map((t) => ({
  id: `sdfleet.template.${t.name}`, label: `Open template: ${t.title}`, function: () => openTemplate(t),
}));
commands.push({ id: "sdfleet.publish", label: "Publish workflow to sdfleet…", function: publish });

app.registerExtension({
  name: "sdfleet.templates",
  commands,
  menuCommands: [{ path: ["sdfleet"], commands: commands.map((c) => c.id) }],
  async setup() {
    // The frontend's built-in default graph is a model family sdfleet does not run: replace it
    // (or an empty canvas) with sdfleet's first template so a new user can press Run at once.
    for (let i = 0; i < 30 && !(app.graph?._nodes?.length > 0); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (templates.length > 0 && !(await graphIsUsable())) await openTemplate(templates[0]);
  },
});
