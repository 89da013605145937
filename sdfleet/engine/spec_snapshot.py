"""The node registry's declarations without torch: a JSON snapshot the API server validates against.

The API server must validate graphs and answer /object_info without importing torch and diffusers
(several seconds and ~400 MB). `node_specs.json` holds every node spec and the supported
sampler × scheduler pairs; a test fails when it differs from the live registry. Regenerate with
`python -m sdfleet.engine.spec_snapshot`."""

from __future__ import annotations

import dataclasses
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from sdfleet.engine.node_registry import InputSpec, NodeDefinition, NodeRegistry, NodeSpec, OutputSpec
from sdfleet.engine.sampler_names import UnsupportedSampler

SNAPSHOT = Path(__file__).with_name("node_specs.json")
SAMPLER_NODES = ("KSampler", "KSamplerAdvanced")


def snapshot_of(registry: NodeRegistry, sampler_pairs: dict[str, list[str]]) -> dict[str, Any]:
    """The JSON-able snapshot of a live registry."""
    nodes = []
    for class_type in registry.class_types():
        spec = registry.get(class_type).spec
        data = dataclasses.asdict(spec)
        data["ignored_inputs"] = sorted(spec.ignored_inputs)
        nodes.append(data)
    return {"nodes": nodes, "sampler_pairs": sampler_pairs}


def live_snapshot() -> dict[str, Any]:
    """Build the snapshot from the engine itself (imports torch)."""
    from sdfleet.engine import samplers
    from sdfleet.engine.executor import node_registry

    pairs = {name: samplers.supported_schedulers(name) for name in samplers.sampler_names()}
    return snapshot_of(node_registry(), pairs)


def _spec(data: dict[str, Any]) -> NodeSpec:
    inputs = tuple(InputSpec(**{**i, "choices": tuple(i["choices"]) if i["choices"] is not None else None})
                   for i in data["inputs"])
    outputs = tuple(OutputSpec(**o) for o in data["outputs"])
    return NodeSpec(**{**data, "inputs": inputs, "outputs": outputs,
                       "ignored_inputs": frozenset(data["ignored_inputs"])})


def _not_here(*_args, **_kwargs):
    raise RuntimeError("the spec registry validates graphs; workers run them with the engine's registry")


@lru_cache(maxsize=1)
def _snapshot() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text())


def check_pair(sampler: str, scheduler: str) -> None:
    """The engine's sampler × scheduler check, from the snapshot (raises UnsupportedSampler)."""
    pairs = _snapshot()["sampler_pairs"]
    if sampler not in pairs:
        raise UnsupportedSampler(f"sampler_name {sampler!r} is unknown; supported: {', '.join(pairs)}",
                                 field_name="sampler_name")
    if scheduler not in pairs[sampler]:
        raise UnsupportedSampler(f"scheduler {scheduler!r} is not supported with sampler {sampler!r}; "
                                 f"supported: {', '.join(pairs[sampler])}", field_name="scheduler")


def _check_sampler_inputs(inputs) -> list[tuple[str, str, str]]:
    sampler, scheduler = inputs.get("sampler_name"), inputs.get("scheduler")
    if not isinstance(sampler, str) or not isinstance(scheduler, str):
        return []
    try:
        check_pair(sampler, scheduler)
    except UnsupportedSampler as exc:
        return [(exc.field_name, "value_not_in_list", str(exc))]
    return []


@lru_cache(maxsize=1)
def spec_registry() -> NodeRegistry:
    """A registry with every node's declarations (no execute functions), loaded from the snapshot."""
    definitions = []
    for data in _snapshot()["nodes"]:
        spec = _spec(data)
        check = _check_sampler_inputs if spec.class_type in SAMPLER_NODES else None
        definitions.append(NodeDefinition(spec=spec, execute=_not_here, check=check))
    return NodeRegistry(definitions)


def main() -> None:
    """Write node_specs.json from the live registry."""
    SNAPSHOT.write_text(json.dumps(live_snapshot(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}", file=sys.stderr)


if __name__ == "__main__":
    main()
