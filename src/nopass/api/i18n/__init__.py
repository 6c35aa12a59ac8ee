"""The hosted login page's texts in English, French, German and Spanish (issue 4 item 3).

One JSON file per language beside this module, every file with the same keys and the same
``{placeholders}`` (a test keeps them in sync). The language is the first supported one of
``ui_locales`` (OIDC Core §3.1.2.1: space-separated, in order of preference), else the best of
``Accept-Language`` by q-value, else English.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib.resources import files

from nopass.core.language import DEFAULT_LANGUAGE, LANGUAGES, best_accepted, primary_subtag

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "Texts", "choose_language", "texts"]


def choose_language(ui_locales: str | None, accept_language: str | None) -> str:
    for tag in (ui_locales or "").split():
        if primary_subtag(tag) in LANGUAGES:
            return primary_subtag(tag)
    return best_accepted(accept_language) or DEFAULT_LANGUAGE


class Texts:
    """The texts of one language; ``texts("code.sent.email", identifier=...)`` fills them in."""

    def __init__(self, language: str, messages: Mapping[str, str]) -> None:
        self.language = language
        self._messages = messages

    def __call__(self, key: str, **values: object) -> str:
        return self._messages[key].format(**values)

    def keys(self) -> frozenset[str]:
        return frozenset(self._messages)


def texts(language: str) -> Texts:
    return _load(language if language in LANGUAGES else DEFAULT_LANGUAGE)


@functools.cache
def _load(language: str) -> Texts:
    raw = files(__name__).joinpath(f"{language}.json").read_text(encoding="utf-8")
    messages = json.loads(raw)
    return Texts(language, {str(k): str(v) for k, v in messages.items()})
