"""Published workflows as Apps in ComfyUI's frontend: `workflows/Published/{name}.app.json` in each artist's
user data, read-only, generated from the current version the artist may run."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Forbidden, NotFound
from sdfleet.domain.workflows import UserFile, WorkflowVersion

APP_DIR = "workflows/Published"
APP_SUFFIX = ".app.json"  # the frontend lists `*.app.json` workflows under Apps and opens them in App Mode
#: where an app file says which published workflow it is; a /prompt carrying it runs as that workflow
MARKER = "sdfleet"


def is_app_path(path: str) -> bool:
    """True for a path inside the published apps' folder (which no one writes)."""
    return path == APP_DIR or path.startswith(APP_DIR + "/")


def _uri(text: str) -> str:
    return quote(text, safe="!'()*-._~")  # JavaScript's encodeURIComponent


def app_document(version: WorkflowVersion, *, output_nodes: list[str]) -> dict[str, Any]:
    """The frontend workflow of a version, opening in App Mode with its exposed inputs as the form."""
    document = copy.deepcopy(version.ui_graph or {})
    extra = document.get("extra") if isinstance(document.get("extra"), dict) else {}
    previous = extra.get("linearData") if isinstance(extra.get("linearData"), Mapping) else {}
    root = document.get("id")
    configs = {}
    for entry in previous.get("inputs") or []:
        if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str):
            configs[entry[0].split(":", 1)[-1]] = entry[2]
    inputs = []
    for item in version.inputs:
        if isinstance(root, str) and root:
            entry = [f"{root}:{_uri(item.node)}:{_uri(item.input)}", item.input]
        else:  # a workflow without an id: App Mode's older `[node id, widget name]`
            entry = [int(item.node) if item.node.isdigit() else item.node, item.input]
        config = configs.get(f"{_uri(item.node)}:{_uri(item.input)}")
        inputs.append(entry if config is None else [*entry, config])
    outputs = previous.get("outputs") or [int(n) if n.isdigit() else n for n in output_nodes]
    document["extra"] = {**extra, "linearMode": True, "linearData": {"inputs": inputs, "outputs": outputs},
                         MARKER: {"app": version.name, "version": version.version}}
    return document


def app_marker(extra_data: Any) -> tuple[str, int] | None:
    """(workflow name, version) when a /prompt's `extra_pnginfo.workflow` is a published app's."""
    pnginfo = extra_data.get("extra_pnginfo") if isinstance(extra_data, Mapping) else None
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, Mapping) else None
    extra = workflow.get("extra") if isinstance(workflow, Mapping) else None
    marker = extra.get(MARKER) if isinstance(extra, Mapping) else None
    if not isinstance(marker, Mapping):
        return None
    name, number = marker.get("app"), marker.get("version")
    if not isinstance(name, str) or isinstance(number, bool) or not isinstance(number, int):
        return None
    return name, number


def without_marker(ui_graph: Any) -> Any:
    """A workflow saved from an app, as published again: the marker is the server's to write."""
    if isinstance(ui_graph, dict) and isinstance(ui_graph.get("extra"), dict) and MARKER in ui_graph["extra"]:
        ui_graph = {**ui_graph, "extra": {k: v for k, v in ui_graph["extra"].items() if k != MARKER}}
    return ui_graph


class ComfyApps:
    """The app files of the workflows a caller may run (those published with the frontend's workflow)."""

    def __init__(self, *, workflows, graphs) -> None:
        self._workflows = workflows
        self._graphs = graphs

    def _file(self, version: WorkflowVersion) -> UserFile:
        definitions = {node_id: self._graphs.registry.get(node.get("class_type"))
                       for node_id, node in version.graph.items()}
        outputs = [str(node_id) for node_id, d in definitions.items() if d is not None and d.spec.output_node]
        content = json.dumps(app_document(version, output_nodes=outputs)).encode()
        return UserFile(path=f"{APP_DIR}/{version.name}{APP_SUFFIX}", size=len(content),
                        modified_at=version.created_at, content=content)

    def files(self, principal: Principal) -> list[UserFile]:
        """One app file per published workflow the caller may run; none for one without a frontend workflow."""
        try:
            versions = self._workflows.list(principal)
        except Forbidden:
            return []
        return [self._file(v) for v in versions if v.ui_graph]

    def read(self, principal: Principal, path: str) -> UserFile:
        """The app file at `path`; 404 for a workflow the caller may not run (as for one that does not exist)."""
        name = path[len(APP_DIR) + 1:].removesuffix(APP_SUFFIX) if path.endswith(APP_SUFFIX) else ""
        try:
            version = self._workflows.get(principal, name) if name and "/" not in name else None
        except (NotFound, Forbidden):
            version = None
        if version is None or not version.ui_graph:
            raise NotFound(f"file {path!r} not found")
        return self._file(version)
