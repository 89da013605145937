"""Per-user A1111 options: what A1111 keeps as global settings, sdfleet keeps for each user.

`sd_model_checkpoint` is that user's default model (for A1111 and native tasks alike); it never
switches a model for anyone else."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from sdfleet.domain.accounts import Principal
from sdfleet.domain.checkpoints import Checkpoint, CheckpointStatus, ModelType
from sdfleet.domain.errors import InvalidInput
from sdfleet.domain.pagination import MAX_LIMIT, Page, PageRequest
from sdfleet.modelfiles.titles import match_title, title_of
from sdfleet.services.checkpoints import CheckpointQuery
from sdfleet.store.user_options import SqlUserOptions

CHECKPOINT = "sd_model_checkpoint"
VAE = "sd_vae"
CLIP_SKIP = "CLIP_stop_at_last_layers"
SUPPORTED = (CHECKPOINT, VAE, CLIP_SKIP)
#: the VAE choices that mean "the checkpoint's own VAE"
VAE_BUILTIN = ("Automatic", "None")


class ModelLister(Protocol):
    """What options need from the registry: the models a user may see."""

    def list(self, principal: Principal, query: CheckpointQuery, page: PageRequest) -> Page[Checkpoint]: ...


def model_title(checkpoint: Checkpoint) -> str:
    """A1111's checkpoint title: `name.safetensors [shorthash]`."""
    return title_of(checkpoint.name, checkpoint.sha256)


def match_model(models: list[Checkpoint], wanted: str) -> Checkpoint | None:
    """The model a title, name, stem or (short) sha256 designates, as A1111 matches them."""
    return match_title(models, wanted)


class UserOptionsService:
    """Read and change one user's A1111 options; give other services that user's defaults."""

    def __init__(self, *, store: SqlUserOptions, models: ModelLister, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._models = models
        self._clock = clock

    def visible_models(self, principal: Principal, model_type: ModelType) -> list[Checkpoint]:
        """Active models of a type the user may see, in the registry's order."""
        query = CheckpointQuery(model_type=model_type.value, status=CheckpointStatus.ACTIVE.value)
        found: list[Checkpoint] = []
        page = PageRequest(limit=MAX_LIMIT)
        while True:
            result = self._models.list(principal, query, page)
            found.extend(result.items)
            if result.next_cursor is None:
                return sorted(found, key=lambda c: c.name.lower())
            page = PageRequest.parse(cursor=result.next_cursor, limit=MAX_LIMIT)

    def preferred_checkpoint(self, principal: Principal) -> str | None:
        """The name the user chose as their default checkpoint, unchecked (a submission checks it against the
        models it resolved anyway)."""
        name = self._store.get(principal.user_id, CHECKPOINT)
        return name if isinstance(name, str) else None

    def default_checkpoint(self, principal: Principal) -> str | None:
        """The registry name of the user's default checkpoint while they may still use it, else None."""
        name = self._store.get(principal.user_id, CHECKPOINT)
        if not isinstance(name, str):
            return None
        models = self.visible_models(principal, ModelType.CHECKPOINT)
        return name if any(m.name == name for m in models) else None

    def overrides(self, principal: Principal) -> dict[str, Any]:
        """The user's VAE and CLIP-skip choices, as A1111 `override_settings` defaults."""
        stored = self._store.get_all(principal.user_id)
        return {k: stored[k] for k in (VAE, CLIP_SKIP) if k in stored}

    def get(self, principal: Principal) -> dict[str, Any]:
        """The options as A1111 answers them; `sd_model_checkpoint` is the title of the model a task would use."""
        stored = self._store.get_all(principal.user_id)
        models = self.visible_models(principal, ModelType.CHECKPOINT)
        chosen = next((m for m in models if m.name == stored.get(CHECKPOINT)), models[0] if models else None)
        return {
            CHECKPOINT: model_title(chosen) if chosen else None,
            "sd_checkpoint_hash": chosen.sha256 if chosen else None,
            VAE: stored.get(VAE, "Automatic"),
            CLIP_SKIP: stored.get(CLIP_SKIP, 1),
            "samples_format": "png",
        }

    def set(self, principal: Principal, values: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and store options for this user only; unknown keys are refused, naming them."""
        if not isinstance(values, Mapping):
            raise InvalidInput("options must be an object of option names and values", field="body")
        unknown = sorted(str(k) for k in values if k not in SUPPORTED)
        if unknown:
            raise InvalidInput(f"unsupported option(s): {', '.join(unknown)}; supported: {', '.join(SUPPORTED)}",
                               field=unknown[0], details={"unsupported": unknown})
        changes: dict[str, Any] = {}
        if CHECKPOINT in values:
            changes[CHECKPOINT] = self._checkpoint(principal, values[CHECKPOINT])
        if VAE in values:
            changes[VAE] = self._vae(principal, values[VAE])
        if CLIP_SKIP in values:
            value = values[CLIP_SKIP]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 12:
                raise InvalidInput(f"{CLIP_SKIP} must be an integer from 1 to 12, got {value!r}", field=CLIP_SKIP)
            changes[CLIP_SKIP] = value
        self._store.put_many(principal.user_id, changes, now=self._clock())
        return self.get(principal)

    def _checkpoint(self, principal: Principal, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not 0 < len(value) <= 300:
            raise InvalidInput(f"{CHECKPOINT} must be a model title from /sdapi/v1/sd-models", field=CHECKPOINT)
        models = self.visible_models(principal, ModelType.CHECKPOINT)
        found = match_model(models, value)
        if found is None:
            names = ", ".join(model_title(m) for m in models[:20]) or "none"
            raise InvalidInput(f"{CHECKPOINT} {value[:100]!r} is not a checkpoint you may use; available: {names}",
                               field=CHECKPOINT)
        return found.name

    def _vae(self, principal: Principal, value: Any) -> str | None:
        if value is None or value in VAE_BUILTIN:
            return None if value in (None, "Automatic") else value
        if not isinstance(value, str) or not 0 < len(value) <= 300:
            raise InvalidInput(f"{VAE} must be Automatic, None or a name from /sdapi/v1/sd-vae", field=VAE)
        found = match_model(self.visible_models(principal, ModelType.VAE), value)
        if found is None:
            raise InvalidInput(f"{VAE} {value[:100]!r} is not a VAE you may use", field=VAE)
        return found.name
