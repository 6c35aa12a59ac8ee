"""JSON responses the way Auth0 sends them: ``application/json; charset=utf-8``."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response


class JSON(Response):
    media_type = "application/json; charset=utf-8"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def auth0_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSON:
    return JSON({"error": error, "error_description": description}, status, headers=headers)
