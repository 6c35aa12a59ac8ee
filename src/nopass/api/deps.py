"""What routes get injected: the service container and the resolved tenant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from nopass.api.request_info import Network
from nopass.core.errors import TenantNotFound
from nopass.core.models import Resolved
from nopass.core.ports import OutboxReader, TenantResolver
from nopass.flows.authorization_request import BrowserDeps
from nopass.flows.management.caller import ManagementDeps
from nopass.flows.start import StartDeps
from nopass.flows.token import TokenDeps
from nopass.flows.userinfo import UserinfoDeps


@dataclass(frozen=True, slots=True)
class Services:
    tenants: TenantResolver
    start: StartDeps
    tokens: TokenDeps
    userinfo: UserinfoDeps
    browser: BrowserDeps
    outbox: OutboxReader
    management: ManagementDeps
    trusted_proxies: list[Network]
    dev_mode: bool
    ready: Callable[[], Awaitable[bool]]  # readiness: can the database be reached?


async def get_services(request: Request) -> Services:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a hand-off per request.
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_tenant(request: Request, services: ServicesDep) -> Resolved:
    host = request.headers.get("host", "")
    resolved = await services.tenants.resolve(host)
    if resolved is None:
        raise TenantNotFound(host)
    return resolved


TenantDep = Annotated[Resolved, Depends(get_tenant)]
