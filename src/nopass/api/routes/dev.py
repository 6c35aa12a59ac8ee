"""``GET /dev/outbox``: what the dev outbox "sent", newest first. Registered only by
``nopass dev`` (never in ``serve``), because it shows codes and links."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from nopass.api.deps import ServicesDep, TenantDep

router = APIRouter()
_pages = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=select_autoescape(default=True),
)


@router.get("/dev/outbox", response_class=HTMLResponse)
async def dev_outbox(services: ServicesDep, tenant: TenantDep) -> HTMLResponse:
    entries = await services.outbox.list_recent(tenant.config.tenant.id, limit=100)
    page = _pages.get_template("dev_outbox.html").render(
        tenant=tenant.config.tenant.name, entries=entries
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
