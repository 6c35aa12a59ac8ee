"""Picking the language of a message or page from what the browser or SDK asked for:
``Accept-Language`` (RFC 9110 §12.5.4) ranked by q-value, then order; only the primary subtag
counts (``fr-CA`` is French); ``q=0`` and malformed q-values exclude an entry."""

from __future__ import annotations

LANGUAGES = ("en", "fr", "de", "es")
DEFAULT_LANGUAGE = "en"


def primary_subtag(tag: str) -> str:
    return tag.strip().split("-", 1)[0].split("_", 1)[0].lower()


def best_accepted(header: str | None) -> str | None:
    """The best of ``LANGUAGES`` for an ``Accept-Language``-style value, or None."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((header or "").split(",")):
        tag, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = primary_subtag(tag)
        if quality > 0 and language in LANGUAGES:
            ranked.append((-quality, position, language))
    return min(ranked)[2] if ranked else None
