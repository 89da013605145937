"""/controlnet: the sd-webui-controlnet extension's API routes clients read before sending units.

Shapes as the extension's `scripts/api.py` answers them. Models are the ControlNets of the registry the caller
may use, titled `name [hash]` as the extension lists them; the only preprocessor is `none`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from sdfleet.api.deps import CurrentPrincipal, ServicesDep
from sdfleet.domain.checkpoints import ModelType
from sdfleet.engine.a1111_controlnet import MODULES

router = APIRouter(prefix="/controlnet", tags=["a1111"])
#: the extension's API version (`external_code.get_api_version`)
API_VERSION = 2


class VersionResponse(BaseModel):
    version: int


class ModelListResponse(BaseModel):
    model_list: list[str]


class ModuleDetail(BaseModel):
    model_free: bool
    sliders: list[Any]


class ModuleListResponse(BaseModel):
    module_list: list[str]
    module_detail: dict[str, ModuleDetail]


@router.get("/version", response_model=VersionResponse)
def version(principal: CurrentPrincipal) -> VersionResponse:
    """The ControlNet extension API version this server speaks."""
    return VersionResponse(version=API_VERSION)


@router.get("/model_list", response_model=ModelListResponse)
def model_list(principal: CurrentPrincipal, services: ServicesDep,
               update: Annotated[bool, Query()] = True) -> ModelListResponse:
    """ControlNet models you may use in a unit's `model`, as `name [hash]` (`update` is accepted; the list is
    always current)."""
    models = services.a1111.models(principal, ModelType.CONTROLNET)
    return ModelListResponse(model_list=[f"{Path(m.name).stem} [{m.sha256[:8]}]" for m in models])


@router.get("/module_list", response_model=ModuleListResponse)
def module_list(principal: CurrentPrincipal, alias_names: Annotated[bool, Query()] = False) -> ModuleListResponse:
    """Preprocessors accepted in a unit's `module`: `none` only (send a ready control image)."""
    return ModuleListResponse(module_list=list(MODULES),
                              module_detail={m: ModuleDetail(model_free=False, sliders=[]) for m in MODULES})
