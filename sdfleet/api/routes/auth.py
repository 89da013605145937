"""/api/v1/auth and /api/v1/me."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from sdfleet.api.client_address import client_address
from sdfleet.api.deps import CurrentPrincipal, ServicesDep
from sdfleet.api.schemas.accounts import LoginRequest, LoginResponse, MePublic

router = APIRouter(tags=["auth"])


@router.post("/auth/login", response_model=LoginResponse)
def login(body: LoginRequest, request: Request, services: ServicesDep) -> LoginResponse:
    """Exchange a username and password for an expiring session token."""
    issued = services.auth.login(username=body.username, password=body.password, client_address=client_address(request))
    principal = services.auth.authenticate(issued.secret)
    return LoginResponse(token=issued.secret, expires_at=issued.expires_at, user=MePublic.of_principal(principal))


@router.post("/auth/logout", status_code=204)
def logout(principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Revoke the session token used for this request."""
    services.auth.logout(principal)
    return Response(status_code=204)


@router.get("/me", response_model=MePublic)
def me(principal: CurrentPrincipal) -> MePublic:
    """The caller, their roles and effective permissions."""
    return MePublic.of_principal(principal)
