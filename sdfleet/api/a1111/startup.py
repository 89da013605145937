"""/sdapi/v1 routes A1111 clients call at start-up: scripts, flags, face restorers, upscaler and extension lists.

Each answers in A1111's shape and tells the truth about sdfleet: it runs no A1111 scripts, extensions,
face restorers or hypernetworks, so those lists are empty. `sd-modules` is Forge's, not A1111's, and is not
served: answering it makes clients take the server for Forge and send Forge-only fields."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from sdfleet.api.deps import CurrentPrincipal, ServicesDep
from sdfleet.domain.checkpoints import ModelType

router = APIRouter(prefix="/sdapi/v1", tags=["a1111"])

#: A1111's command-line flags as its `/cmd-flags` reports them, at the values that describe sdfleet
#: (API on, no web-UI-only or low-memory switches, model folders managed by the registry).
CMD_FLAGS: dict[str, Any] = {
    "api": True, "nowebui": False, "api_auth": None, "api_log": False, "listen": False, "port": None,
    "share": False, "server_name": None, "gradio_auth": None, "gradio_queue": True, "autolaunch": False,
    "cors_allow_origins": None, "cors_allow_origins_regex": None, "tls_keyfile": None, "tls_certfile": None,
    "timeout_keep_alive": 30, "skip_version_check": True, "skip_torch_cuda_test": False, "skip_install": True,
    "no_download_sd_model": True, "medvram": False, "medvram_sdxl": False, "lowvram": False, "lowram": False,
    "precision": "autocast", "no_half": False, "no_half_vae": False, "upcast_sampling": False,
    "xformers": False, "force_enable_xformers": False, "opt_sdp_attention": True, "opt_sdp_no_mem_attention": False,
    "opt_split_attention": False, "disable_nan_check": False, "use_cpu": [], "device_id": None,
    "data_dir": "", "models_dir": None, "ckpt_dir": None, "vae_dir": None, "lora_dir": None,
    "embeddings_dir": None, "hypernetwork_dir": None, "esrgan_models_path": None,
    "realesrgan_models_path": None, "codeformer_models_path": None, "gfpgan_models_path": None,
    "hide_ui_dir_config": True, "freeze_settings": False, "enable_insecure_extension_access": False,
    "disable_safe_unpickle": False, "disable_all_extensions": True, "disable_extra_extensions": True,
    "administrator": False, "theme": None, "ui_debug_mode": False, "enable_console_prompts": False,
}


class ScriptsList(BaseModel):
    txt2img: list[str]
    img2img: list[str]


class FaceRestorerItem(BaseModel):
    name: str
    cmd_dir: str | None


class RealesrganItem(BaseModel):
    name: str
    path: str | None
    scale: int | None


class HypernetworkItem(BaseModel):
    name: str
    path: str | None


class ExtensionItem(BaseModel):
    name: str
    remote: str
    branch: str
    commit_hash: str
    version: str
    commit_date: str
    enabled: bool


@router.get("/scripts", response_model=ScriptsList)
def scripts(principal: CurrentPrincipal) -> ScriptsList:
    """Selectable scripts for `script_name`: none (sdfleet runs no A1111 scripts)."""
    return ScriptsList(txt2img=[], img2img=[])


@router.get("/script-info")
def script_info(principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """The scripts' argument descriptions: none."""
    return []


@router.get("/cmd-flags")
def cmd_flags(principal: CurrentPrincipal) -> dict[str, Any]:
    """A1111's command-line flags, at the values that describe this server."""
    return dict(CMD_FLAGS)


@router.get("/face-restorers", response_model=list[FaceRestorerItem])
def face_restorers(principal: CurrentPrincipal) -> list[FaceRestorerItem]:
    """Face restorers for `restore_faces`: none (`restore_faces: true` is refused)."""
    return []


@router.get("/realesrgan-models", response_model=list[RealesrganItem])
def realesrgan_models(principal: CurrentPrincipal, services: ServicesDep) -> list[RealesrganItem]:
    """The upscaler models you may use (ESRGAN/RealESRGAN-style files, for hires fix and extras)."""
    return [RealesrganItem(name=Path(m.name).stem, path=m.name, scale=_scale(m.metadata))
            for m in services.a1111.models(principal, ModelType.UPSCALER)]


@router.get("/hypernetworks", response_model=list[HypernetworkItem])
def hypernetworks(principal: CurrentPrincipal) -> list[HypernetworkItem]:
    """Hypernetworks: none (sdfleet does not load them)."""
    return []


@router.get("/extensions", response_model=list[ExtensionItem])
def extensions(principal: CurrentPrincipal) -> list[ExtensionItem]:
    """Installed A1111 extensions: none."""
    return []


def _scale(metadata: Any) -> int | None:
    value = metadata.get("scale") if isinstance(metadata, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
