"""``GET /openapi.json``: the hand-written OpenAPI 3 description of the JSON endpoints.

Written by hand rather than generated: routes read raw bodies (JSON or form,
docs/specs/auth0-wire.md §1.2) and answer Auth0's shapes, which the framework cannot infer.
``tests/api/ test_schemathesis.py`` holds the server to it.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import Response

router = APIRouter()


@cache
def document() -> bytes:
    return files("nopass.api").joinpath("openapi.json").read_bytes()


@router.get("/openapi.json")
async def openapi() -> Response:
    return Response(
        document(),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=3600"},
    )
