"""Published workflows: lead artists publish versioned graphs, artists run them through exposed inputs only."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.audit import AuditAction, AuditTarget, field_changes
from sdfleet.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from sdfleet.domain.permissions import ADMIN_ROLE, Permission
from sdfleet.domain.workflows import COMFY_TYPE_NAMES, InputType, WorkflowInput, WorkflowVersion
from sdfleet.jobs.records import Job
from sdfleet.services.app_inputs import InputHint, hint_of, inputs_from_linear_data, linear_data
from sdfleet.services.audit import AuditLog
from sdfleet.services.authorization import authorize
from sdfleet.services.comfy_apps import without_marker
from sdfleet.services.graphs import FOLDER_TYPES, GraphTools, ModelReference
from sdfleet.services.inference import InferenceService, ModelCatalog, Submission
from sdfleet.store.workflows import SqlWorkflowStore

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,127}$")
INPUT_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_INPUTS = 64
MAX_DESCRIPTION = 4000


def _check_value(spec: WorkflowInput, value: Any, *, field: str) -> Any:
    """A value of the input's type within its bounds, or InvalidInput naming the field."""
    kind = spec.type
    if kind in (InputType.STRING, InputType.IMAGE):
        if not isinstance(value, str):
            raise InvalidInput(f"{field} must be a string, got {type(value).__name__}", field=field)
        if len(value) > 20_000:
            raise InvalidInput(f"{field} is longer than 20000 characters", field=field)
    elif kind is InputType.BOOLEAN:
        if not isinstance(value, bool):
            raise InvalidInput(f"{field} must be true or false", field=field)
    elif kind is InputType.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{field} must be a whole number, got {value!r}", field=field)
    elif kind is InputType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInput(f"{field} must be a number, got {value!r}", field=field)
    elif kind is InputType.CHOICE:
        if spec.choices is not None and value not in spec.choices:
            raise InvalidInput(f"{field} must be one of {list(spec.choices)!r}, got {value!r}", field=field)
    if kind in (InputType.INT, InputType.FLOAT):
        if spec.min is not None and value < spec.min:
            raise InvalidInput(f"{field} must be at least {spec.min}, got {value}", field=field)
        if spec.max is not None and value > spec.max:
            raise InvalidInput(f"{field} must be at most {spec.max}, got {value}", field=field)
    return value


def _no_hint(_node_id: str, _input_name: str) -> InputHint | None:
    return None


def parse_inputs(raw: Any, graph: Mapping[str, Any], *,
                 hints: Callable[[str, str], InputHint | None] = _no_hint) -> tuple[WorkflowInput, ...]:
    """Validate the exposed-input declarations against the graph; `type`, `min`, `max` and `choices` left out
    come from `hints` (the node's input spec)."""
    if not isinstance(raw, list) or len(raw) > MAX_INPUTS:
        raise InvalidInput(f"inputs must be a list of at most {MAX_INPUTS} objects", field="inputs")
    seen: set[str] = set()
    targets: set[tuple[str, str]] = set()
    parsed = []
    for i, item in enumerate(raw):
        where = f"inputs[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{where} must be an object", field=where)
        name, node, input_name = item.get("name"), item.get("node"), item.get("input")
        if not isinstance(name, str) or not INPUT_NAME_PATTERN.match(name):
            raise InvalidInput(f"{where}.name must be an identifier (letters, digits, _), got {name!r}",
                               field=f"{where}.name")
        if name in seen:
            raise InvalidInput(f"{where}.name {name!r} is used twice", field=f"{where}.name")
        node = str(node) if isinstance(node, int | str) else node
        if not isinstance(node, str) or not isinstance(graph.get(node), Mapping):
            raise InvalidInput(f"{where}.node must be a node id of the graph, got {node!r}", field=f"{where}.node")
        node_inputs = graph[node].get("inputs") or {}
        if not isinstance(input_name, str) or input_name not in node_inputs:
            raise InvalidInput(f"{where}.input must be an input of node {node}; it has "
                               f"{', '.join(sorted(node_inputs))}", field=f"{where}.input")
        if isinstance(node_inputs[input_name], list):
            raise InvalidInput(f"{where}.input {input_name!r} of node {node} is a link, not a value",
                               field=f"{where}.input")
        if (node, input_name) in targets:
            raise InvalidInput(f"{where} exposes node {node} input {input_name!r} twice", field=where)
        hint = hints(node, input_name)
        raw_type = item.get("type")
        if raw_type is None and (hint is None or hint.type is None):
            raise InvalidInput(f"{where}.type is required: node {node} input {input_name!r} has no declared "
                               "type to infer it from", field=f"{where}.type")
        try:
            kind = hint.type if raw_type is None else InputType.named(raw_type if isinstance(raw_type, str) else "")
        except ValueError:
            raise InvalidInput(f"{where}.type must be one of {', '.join(t.value for t in InputType)} or "
                               f"ComfyUI's {', '.join(COMFY_TYPE_NAMES)}", field=f"{where}.type") from None
        same_kind = hint is not None and hint.type is kind
        bounds = {}
        for key in ("min", "max"):
            value = item.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InvalidInput(f"{where}.{key} must be a number", field=f"{where}.{key}")
            bounds[key] = value if value is not None or not same_kind else getattr(hint, key)
        choices = item.get("choices")
        if choices is None and same_kind and hint.choices is not None:
            choices = list(hint.choices)
        if choices is not None and (not isinstance(choices, list) or not choices or len(choices) > 1000):
            raise InvalidInput(f"{where}.choices must be a non-empty list", field=f"{where}.choices")
        if kind is InputType.CHOICE and choices is None:
            raise InvalidInput(f"{where}.choices is required for type choice", field=f"{where}.choices")
        label = item.get("label", name)
        if not isinstance(label, str) or len(label) > 200:
            raise InvalidInput(f"{where}.label must be a string of at most 200 characters", field=f"{where}.label")
        spec = WorkflowInput(name=name, node=node, input=input_name, label=label, type=kind,
                             default=item.get("default", node_inputs[input_name]), min=bounds["min"],
                             max=bounds["max"], choices=tuple(choices) if choices is not None else None)
        _check_value(spec, spec.default, field=f"{where}.default")
        seen.add(name)
        targets.add((node, input_name))
        parsed.append(spec)
    return tuple(parsed)


def _differs(published: Mapping[str, Any], graph: Mapping[str, Any], exposed: set[tuple[str, str]]) -> bool:
    """True when `graph` is not `published` with other values for exposed inputs only."""
    if set(published) != set(graph):
        return True
    for node_id, node in published.items():
        other = graph[node_id]
        if not isinstance(other, Mapping) or other.get("class_type") != node.get("class_type"):
            return True
        values, others = node.get("inputs") or {}, other.get("inputs") or {}
        if not isinstance(others, Mapping) or set(values) != set(others):
            return True
        if any(values[k] != others[k] for k in values if (node_id, k) not in exposed):
            return True
    return False


class WorkflowService:
    """Publish, list, unpublish and run workflows."""

    def __init__(self, *, store: SqlWorkflowStore, graphs: GraphTools, catalog: ModelCatalog,
                 inference: InferenceService, clock: Callable[[], datetime], audit: AuditLog | None = None) -> None:
        self._store = store
        self._audit = audit
        self._graphs = graphs
        self._catalog = catalog
        self._inference = inference
        self._clock = clock

    # Publishing (workflow:all)
    def publish(self, principal: Principal, *, name: Any, description: Any, graph: Any, ui_graph: Any,
                allowed_roles: Any, inputs: Any, requires_approval: Any = False) -> WorkflowVersion:
        """Validate the graph, pin its models by sha256 and store a new current version (held until approved
        when `requires_approval`)."""
        authorize(principal, Permission.WORKFLOW_ALL)
        if not isinstance(requires_approval, bool):
            raise InvalidInput("requires_approval must be true or false", field="requires_approval")
        # 1. Check the fields.
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise InvalidInput("name must be 1-128 letters, digits, spaces, '.', '_' or '-', starting with a "
                               f"letter or digit; got {name!r}", field="name")
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise InvalidInput(f"description must be a string of at most {MAX_DESCRIPTION} characters",
                               field="description")
        if not isinstance(graph, dict) or not graph:
            raise InvalidInput("graph must be a non-empty API-format graph object", field="graph")
        if ui_graph is not None and not isinstance(ui_graph, dict):
            raise InvalidInput("ui_graph must be the frontend's workflow object or null", field="ui_graph")
        ui_graph = without_marker(ui_graph)
        if not isinstance(allowed_roles, list) or not all(isinstance(r, str) and r for r in allowed_roles):
            raise InvalidInput("allowed_roles must be a list of role names ([] = every artist)", field="allowed_roles")
        # 2. Validate the graph against the node registry and the models the publisher may use.
        model_names = {folder: self._catalog.visible_names(principal, t.value) for folder, t in FOLDER_TYPES.items()}
        # Input images belong to whoever runs the workflow; they are checked at run time.
        model_names["input"] = [str((n.get("inputs") or {}).get("image")) for n in graph.values()
                                if isinstance(n, Mapping) and n.get("class_type") in ("LoadImage", "LoadImageMask")]
        self._graphs.validate(graph, model_names=model_names)
        # 3. The exposed inputs: declared, or App Mode's selection (`extra.linearData`); kinds from node specs.
        if inputs is None:
            inputs = inputs_from_linear_data(ui_graph, graph) if linear_data(ui_graph) is not None else []
        exposed = parse_inputs(inputs, graph, hints=lambda node, name: hint_of(
            self._graphs.input_spec(graph[node].get("class_type"), name), model_names))
        # 4. Pin every referenced model by sha256, and every model an exposed choice may pick.
        models = self._pin(principal, [*self._graphs.model_references(graph), *self._choice_references(graph, exposed)])
        version = WorkflowVersion(name=name, version=0, description=description, graph=graph, ui_graph=ui_graph,
                                  inputs=exposed, allowed_roles=tuple(dict.fromkeys(allowed_roles)),
                                  models=tuple(models), published=True, created_by=principal.user_id,
                                  created_at=self._clock(), requires_approval=requires_approval)
        published = self._store.publish(version, now=self._clock())
        self._record(AuditAction.WORKFLOW_PUBLISH, principal, published, changes=field_changes(
            {}, {"published": True, "allowed_roles": list(published.allowed_roles),
                 "requires_approval": requires_approval}),
            details={"models": [m["sha256"] for m in published.models], "inputs": len(published.inputs)})
        return published

    def _choice_references(self, graph: Mapping[str, Any], exposed: tuple[WorkflowInput, ...]) -> list[ModelReference]:
        """The models an exposed choice of a model input (a checkpoint picker) lets artists pick."""
        refs = []
        for item in exposed:
            spec = self._graphs.input_spec(graph[item.node].get("class_type"), item.input)
            folder = getattr(spec, "model_folder", None)
            if item.type is InputType.CHOICE and folder in FOLDER_TYPES:
                refs.extend(ModelReference(folder=folder, name=str(choice), node_id=item.node, input_name=item.input)
                            for choice in item.choices or ())
        return refs

    def _pin(self, principal: Principal, refs: list[ModelReference]) -> list[dict[str, Any]]:
        pinned: dict[tuple[str, str], dict[str, Any]] = {}
        for ref in refs:
            if (ref.folder, ref.name) in pinned:
                continue
            try:
                record = self._catalog.resolve(principal, model_type=FOLDER_TYPES[ref.folder].value, name=ref.name)
            except NotFound:
                raise InvalidInput(f"node {ref.node_id}: {ref.input_name} {ref.name!r} is not a model you may use",
                                   field="graph") from None
            pinned[(ref.folder, ref.name)] = {"folder": ref.folder, "name": ref.name, "sha256": record.sha256}
        return list(pinned.values())

    def set_published(self, principal: Principal, name: str, version: int, *, published: bool) -> WorkflowVersion:
        """Unpublish a version, or publish it again as the current one."""
        authorize(principal, Permission.WORKFLOW_ALL)
        before = next((v for v in self._store.versions(name) if v.version == version), None)
        if published and before is not None and before.awaiting_approval:
            raise Conflict(f"version {version} of {name!r} waits for approval; approving it publishes it",
                           details={"workflow": name, "version": version})
        result = self._store.set_published(name, version, published=published, now=self._clock())
        if result is None:
            raise NotFound(f"workflow {name!r} has no version {version}")
        if before is None or before.published != published:
            action = AuditAction.WORKFLOW_PUBLISH if published else AuditAction.WORKFLOW_UNPUBLISH
            self._record(action, principal, result, changes=field_changes(
                {"published": before.published if before else None}, {"published": published}),
                details={"republished": published})
        return result

    def approve(self, principal: Principal, name: str, version: int) -> WorkflowVersion:
        """Approve a held version: it becomes the current one artists see. An admin, or a workflow:all holder
        other than its author."""
        authorize(principal, Permission.WORKFLOW_ALL)
        found = next((v for v in self._store.versions(name) if v.version == version), None)
        if found is None:
            raise NotFound(f"workflow {name!r} has no version {version}")
        if not found.requires_approval:
            raise Conflict(f"version {version} of {name!r} was published without needing approval")
        if found.approved_by is not None:
            raise Conflict(f"version {version} of {name!r} is already approved", details={"approved_by": found.approved_by})
        if found.created_by == principal.user_id and ADMIN_ROLE not in principal.user.roles:
            raise Forbidden("a version is approved by an admin or by another lead artist than its author")
        approved = self._store.approve(name, version, approver=principal.user_id, now=self._clock())
        if approved is None:
            raise NotFound(f"workflow {name!r} has no version {version}")
        self._record(AuditAction.WORKFLOW_PUBLISH, principal, approved, changes=field_changes(
            {"approved_by": None}, {"approved_by": principal.user_id}), details={"approved": True})
        return approved

    def _record(self, action: AuditAction, principal: Principal, version: WorkflowVersion, *, changes: dict,
                details: dict) -> None:
        if self._audit is not None:
            self._audit.record(action, actor=principal, changes=changes, details={"version": version.version, **details},
                               target=AuditTarget("workflow", f"{version.name}@{version.version}", version.name))

    def versions(self, principal: Principal, name: str) -> list[WorkflowVersion]:
        """Every version, published or not (lead artists)."""
        authorize(principal, Permission.WORKFLOW_ALL)
        found = self._store.versions(name)
        if not found:
            raise NotFound(f"workflow {name!r} not found")
        return found

    # Using (inference:all)
    def _may_see(self, principal: Principal, version: WorkflowVersion) -> bool:
        if principal.can(Permission.WORKFLOW_ALL) or not version.allowed_roles:
            return True
        return bool(set(principal.user.roles) & set(version.allowed_roles))

    def list(self, principal: Principal) -> list[WorkflowVersion]:
        """The current version of each published workflow the caller may see."""
        authorize(principal, Permission.INFERENCE_ALL)
        return [v for v in self._store.list_current() if self._may_see(principal, v)]

    def get(self, principal: Principal, name: str) -> WorkflowVersion:
        """The current version of a workflow the caller may see."""
        authorize(principal, Permission.INFERENCE_ALL)
        version = self._store.current(name) if isinstance(name, str) else None
        if version is None or not self._may_see(principal, version):
            raise NotFound(f"workflow {name!r} not found")
        return version

    def run(self, principal: Principal, name: str, *, inputs: Any, idempotency_key: str | None = None,
            body_hash: str | None = None, extra: Mapping[str, Any] | None = None) -> Job:
        """Queue the current version with the caller's values for its exposed inputs; nothing else changes.
        `extra` travels with the job (a ComfyUI client's id, for its WebSocket)."""
        version = self.get(principal, name)
        if not isinstance(inputs, Mapping):
            raise InvalidInput("inputs must be an object of exposed input names to values", field="inputs")
        by_name = {i.name: i for i in version.inputs}
        unknown = sorted(set(inputs) - set(by_name))
        if unknown:
            raise InvalidInput(f"inputs.{unknown[0]} is not an exposed input of {name!r}; it exposes: "
                               f"{', '.join(by_name) or 'nothing'}", field=f"inputs.{unknown[0]}")
        graph = copy.deepcopy(version.graph)
        for spec in version.inputs:
            value = inputs.get(spec.name, spec.default)
            graph[spec.node]["inputs"][spec.input] = _check_value(spec, value, field=f"inputs.{spec.name}")
        self._check_pins(principal, version, graph)
        extra = {**(extra or {}), "workflow": {"name": version.name, "version": version.version}}
        return self._inference.submit(principal, Submission(graph=graph, source="workflow", extra=extra,
                                                            idempotency_key=idempotency_key), body_hash=body_hash)

    def run_app(self, principal: Principal, name: str, *, version: int, graph: Mapping[str, Any],
                extra: Mapping[str, Any], idempotency_key: str | None = None) -> Job | None:
        """A ComfyUI /prompt sent from a published app: the values its exposed inputs have in `graph` run the
        current version (the rest of `graph` is ignored). None when a lead artist (workflow:all) changed more
        than the exposed inputs: that is a draft of theirs, queued as an ordinary prompt."""
        current = self.get(principal, name)
        exposed = {(i.node, i.input) for i in current.inputs}
        if principal.can(Permission.WORKFLOW_ALL) and _differs(current.graph, graph, exposed):
            return None
        if version != current.version:
            raise Conflict(f"app {name!r} is now at version {current.version} (you ran version {version}); "
                           "open it again from Apps", details={"workflow": name, "version": current.version})
        inputs = {}
        for spec in current.inputs:
            node = graph.get(spec.node)
            values = node.get("inputs") if isinstance(node, Mapping) else None
            if isinstance(values, Mapping) and spec.input in values and not isinstance(values[spec.input], list):
                inputs[spec.name] = values[spec.input]
        return self.run(principal, name, inputs=inputs, idempotency_key=idempotency_key, extra=extra)

    def _check_pins(self, principal: Principal, version: WorkflowVersion, graph: Mapping[str, Any]) -> None:
        """Refuse to run a pinned model whose name now points at different weights."""
        pins = {(m["folder"], m["name"]): m["sha256"] for m in version.models}
        for ref in self._graphs.model_references(graph):
            expected = pins.get((ref.folder, ref.name))
            if expected is None:
                continue
            try:
                record = self._catalog.resolve(principal, model_type=FOLDER_TYPES[ref.folder].value, name=ref.name)
            except NotFound:
                raise Conflict(f"workflow {version.name!r} uses {ref.name!r}, which you may not use",
                               details={"model": ref.name}) from None
            if record.sha256 != expected:
                raise Conflict(f"model {ref.name!r} changed since version {version.version} was published; "
                               "a lead artist must publish the workflow again", details={"model": ref.name})
