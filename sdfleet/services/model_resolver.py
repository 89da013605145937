"""Every model reference of a submission resolved once, against the models the caller may use, into the
`ModelPin`s the job keeps: one registry query per submission, nothing looked up again downstream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import InvalidInput
from sdfleet.jobs.spec import ModelPin
from sdfleet.modelfiles.titles import match_title, parse_title, title_of
from sdfleet.modelfiles.types import ENGINE_FOLDERS, ModelType
from sdfleet.services.graphs import FOLDER_TYPES, ModelReference

#: A1111 override settings that name a model, and the engine folder of each
A1111_MODEL_OPTIONS = {"sd_model_checkpoint": ENGINE_FOLDERS[ModelType.CHECKPOINT],
                       "sd_vae": ENGINE_FOLDERS[ModelType.VAE]}


class PinCatalog(Protocol):
    """What resolution needs from the model registry: the caller's models, in one query."""

    def visible_pins(self, principal: Principal) -> list[ModelPin]: ...


class VisibleModels:
    """The models one caller may use, by engine folder: names for validation and pickers, pins for the job."""

    def __init__(self, pins: Sequence[ModelPin]) -> None:
        self._by_folder: dict[str, dict[str, ModelPin]] = {folder: {} for folder in FOLDER_TYPES}
        for pin in pins:
            self._by_folder.setdefault(pin.folder, {})[pin.name] = pin

    def names(self, folder: str) -> list[str]:
        return list(self._by_folder.get(folder, {}))

    def names_by_folder(self) -> dict[str, list[str]]:
        return {folder: list(pins) for folder, pins in self._by_folder.items()}

    def pin(self, folder: str, name: str) -> ModelPin | None:
        return self._by_folder.get(folder, {}).get(name)

    def match(self, folder: str, title: str) -> ModelPin | None:
        """The model an A1111 title, name, stem or hash designates (a bracketed hash must be the model's)."""
        return match_title(self._by_folder.get(folder, {}).values(), title)


class ModelResolver:
    """Turns a submission's model references into pins, with the caller's visibility."""

    def __init__(self, catalog: PinCatalog) -> None:
        self._catalog = catalog

    def visible(self, principal: Principal) -> VisibleModels:
        """The caller's models (the one registry query of a submission)."""
        return VisibleModels(self._catalog.visible_pins(principal))

    @staticmethod
    def resolve_titles(overrides: Mapping[str, Any], visible: VisibleModels) -> dict[str, Any]:
        """A1111 `override_settings` with every model title replaced by the registry name it designates.

        A title whose name is known but whose bracketed hash is another file's is refused, naming the option;
        an unknown name is left for graph validation to refuse with the list of models."""
        resolved = dict(overrides)
        for option, folder in A1111_MODEL_OPTIONS.items():
            value = overrides.get(option)
            if not isinstance(value, str) or value in ("Automatic", "None", ""):
                continue
            pin = visible.match(folder, value)
            if pin is not None:
                resolved[option] = pin.name
                continue
            title = parse_title(value)
            named = visible.match(folder, title.name)
            if title.hash_prefix is not None and named is not None:
                raise InvalidInput(
                    f"override_settings.{option} {value[:100]!r}: [{title.hash_prefix}] is not the hash of "
                    f"{named.name!r}; its title is {title_of(named.name, named.sha256)!r}",
                    field=f"params.override_settings.{option}")
        return resolved

    @staticmethod
    def pin_references(refs: Sequence[ModelReference], visible: VisibleModels) -> list[ModelPin]:
        """The pins of a graph's model references, each once; a model the caller may not use is refused."""
        pinned: dict[tuple[str, str], ModelPin] = {}
        for ref in refs:
            if (ref.folder, ref.name) in pinned:
                continue
            if ref.folder not in FOLDER_TYPES:
                raise InvalidInput(f"node {ref.node_id}: unknown model folder {ref.folder!r}", field="graph")
            pin = visible.pin(ref.folder, ref.name)
            if pin is None:
                raise InvalidInput(f"node {ref.node_id}: {ref.input_name} {ref.name!r} is not a model you may use",
                                   field="graph")
            pinned[(ref.folder, ref.name)] = pin
        return list(pinned.values())
