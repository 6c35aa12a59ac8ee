"""Liveness and readiness: ``/health/live`` answers while the process runs,
``/health/ready`` only while the database answers too."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from nopass.api.deps import ServicesDep
from nopass.api.responses import JSON

router = APIRouter()


@router.get("/health/live")
async def live() -> Response:
    return JSON({"status": "ok"})


@router.get("/health/ready")
async def ready(services: ServicesDep) -> Response:
    if await services.ready():
        return JSON({"status": "ok"})
    return JSON({"status": "unavailable", "checks": {"database": "unreachable"}}, 503)
