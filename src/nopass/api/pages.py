"""HTML pages of nopass itself (Jinja2): no external assets, a strict Content-Security-Policy
with a per-response nonce, ``Referrer-Policy: no-referrer``, never cached."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page(
    template: str,
    *,
    status: int = 200,
    form_targets: tuple[str, ...] = (),
    frame_ancestors: tuple[str, ...] = (),
    images: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    body = _env.get_template(template).render(nonce=nonce, **context)
    form_action = " ".join(("'self'", *form_targets))
    ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    img_src = " ".join(("data:", *images))
    csp = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        f"img-src {img_src}; form-action {form_action}; frame-ancestors {ancestors}; "
        "base-uri 'none'"
    )
    response = HTMLResponse(body, status_code=status, headers=headers)
    response.headers["Content-Security-Policy"] = csp
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
