"""Render passwordless emails and text messages the way Auth0 does.

Implements the template rules of Auth0's passwordless connections (docs/specs/auth0-wire.md §6.3,
from Auth0 docs "Configure Passwordless Email" / "Configure Passwordless SMS", message syntax
include, and "Passwordless Authentication with Email"):

* A custom email (``options.email.body``/``subject``/``from``) is Liquid with the variables
  ``code`` (alias ``password``), ``link``, ``application.name``, ``request_language``, ``send``,
  ``phone_number`` and ``operation``. Its body is HTML; a plain-text part is derived from it.
* A custom SMS (``options.template``) uses ``syntax: "md_with_macros"`` (``@@password@@``,
  ``@@code@@``, ``@@application.name@@``) or ``syntax: "liquid"``.
* Without a custom template, built-in defaults in English, French, German and Spanish are
  chosen from ``request_language`` (``X-Request-Language``, else ``Accept-Language``).

Every distinct Liquid source is parsed once and kept, because rendering is on the hot path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from importlib.resources import files

from jinja2 import (
    Environment as JinjaEnvironment,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)
from liquid import Environment as LiquidEnvironment
from liquid.template import BoundTemplate

from nopass.core.language import DEFAULT_LANGUAGE, LANGUAGES, best_accepted
from nopass.core.models import Channel, Connection, Message
from nopass.core.options import EmailOptions, EmailTemplate, SmsOptions
from nopass.core.ports import TemplateContext

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "TemplateRenderer", "html_to_text", "pick_language"]

LINK_SENDS = frozenset({"link", "link_ios", "link_android"})

_PACKAGE = "nopass.delivery"
_TEMPLATE_DIR = "default_templates"
_MAX_CACHED = 1024


def pick_language(request_language: str | None) -> str:
    """Best of ``LANGUAGES`` for an ``Accept-Language``-style value, by q-value then order.

    Only the primary subtag counts (``fr-CA`` is French). ``q=0`` and malformed q-values
    exclude an entry. Nothing acceptable gives ``DEFAULT_LANGUAGE``.
    """
    return best_accepted(request_language) or DEFAULT_LANGUAGE


class _TextExtractor(HTMLParser):
    """Collects readable text from HTML: blocks become lines, links keep their URL."""

    _BLOCKS = frozenset(
        {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr"}
    )
    _HIDDEN = frozenset({"head", "style", "script", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._hrefs: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "a":
            self._hrefs.append((dict(attrs).get("href"), len(self.parts)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")
        elif tag == "a" and self._hrefs:
            href, start = self._hrefs.pop()
            label = "".join(self.parts[start:]).strip()
            if href and href.startswith(("http://", "https://")) and href not in label:
                self.parts.append(f" ({href})" if label else href)

    def handle_data(self, data: str) -> None:
        if not self._hidden:  # source line breaks are spaces; only blocks break lines
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """A plain-text rendering of an HTML email body: tags stripped, entities decoded
    (once, by the parser), whitespace collapsed, link URLs kept visible."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    text = "".join(extractor.parts)
    lines = (re.sub(r"[ \u00a0]+", " ", line).strip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _load_catalog(language: str) -> dict[str, str]:
    resource = files(_PACKAGE) / _TEMPLATE_DIR / "messages" / f"{language}.json"
    catalog: dict[str, str] = json.loads(resource.read_text(encoding="utf-8"))
    return catalog


class TemplateRenderer:
    """The ``Renderer`` port: Auth0-style custom templates, or localised defaults."""

    def __init__(self) -> None:
        self._html = LiquidEnvironment(autoescape=True)
        self._plain = LiquidEnvironment()
        self._parsed: dict[tuple[bool, str], BoundTemplate] = {}
        jinja = JinjaEnvironment(
            loader=PackageLoader(_PACKAGE, _TEMPLATE_DIR),
            autoescape=select_autoescape(enabled_extensions=("html",)),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._email_html = jinja.get_template("email.html")
        self._email_text = jinja.get_template("email.txt")
        self._catalogs = {language: _load_catalog(language) for language in LANGUAGES}

    def email(
        self, connection: Connection, context: TemplateContext, default_sender: str
    ) -> Message:
        options = connection.options
        custom = options.template if isinstance(options, EmailOptions) else None
        custom = custom or EmailTemplate()
        variables = _variables(context, phone_number="")
        strings = self._strings(context)
        subject = strings["subject"]
        if custom.subject:
            subject = self._liquid(custom.subject, variables, html=False)
        sender = default_sender
        if custom.sender:
            sender = self._liquid(custom.sender, variables, html=False)
        if custom.body:
            html = self._liquid(custom.body, variables, html=True)
            text = html_to_text(html)
        else:
            page = {
                "lang": strings["lang"],
                "t": strings,
                "app": context.application_name,
                "code": context.code,
                "link": context.link,
                "is_link": _is_link(context),
            }
            html = self._email_html.render(page)
            text = self._email_text.render(page).strip() + "\n"
        return Message(
            channel=Channel.EMAIL,
            recipient=context.recipient,
            subject=_one_line(subject),
            text=text,
            html=html,
            sender=_one_line(sender),
        )

    def sms(self, connection: Connection, context: TemplateContext) -> Message:
        options = connection.options if isinstance(connection.options, SmsOptions) else SmsOptions()
        template = options.template
        if not template:
            text = self._strings(context)["sms"]
        elif options.syntax == "liquid":
            variables = _variables(context, phone_number=context.recipient)
            text = self._liquid(template, variables, html=False)
        else:
            text = (
                template.replace("@@password@@", context.code)
                .replace("@@code@@", context.code)
                .replace("@@application.name@@", context.application_name)
            )
        return Message(
            channel=Channel.SMS,
            recipient=context.recipient,
            subject="",
            text=text,
            sender=options.sender,
        )

    def _liquid(self, source: str, variables: Mapping[str, object], *, html: bool) -> str:
        key = (html, source)
        template = self._parsed.get(key)
        if template is None:
            environment = self._html if html else self._plain
            template = environment.from_string(source)
            if len(self._parsed) >= _MAX_CACHED:
                self._parsed.pop(next(iter(self._parsed)))
            self._parsed[key] = template
        return template.render(**variables)

    def _strings(self, context: TemplateContext) -> dict[str, str]:
        """The default-template sentences for the context's language, already filled in."""
        language = pick_language(context.request_language)
        catalog = self._catalogs[language]
        minutes = max(1, context.lifetime_seconds // 60)
        plural = "minutes_one" if minutes == 1 else "minutes_other"
        duration = catalog[plural].format(minutes=minutes)
        fill = {
            "app": context.application_name,
            "code": context.code,
            "link": context.link,
            "duration": duration,
        }
        kind = "link" if _is_link(context) else "code"
        return {
            "lang": language,
            "subject": catalog[f"subject_{kind}"].format(**fill),
            "intro": catalog[f"intro_{kind}"].format(**fill),
            "expiry": catalog[f"expiry_{kind}"].format(**fill),
            "sms": catalog[f"sms_{kind}"].format(**fill),
            "button": catalog["button"],
            "link_fallback": catalog["link_fallback"],
            "code_alternative": catalog["code_alternative"],
            "ignore": catalog["ignore"],
        }


def _one_line(header: str) -> str:
    """A header value without line breaks, so no value can smuggle in another header."""
    return " ".join(header.split())


def _is_link(context: TemplateContext) -> bool:
    return context.send in LINK_SENDS and bool(context.link)


def _variables(context: TemplateContext, *, phone_number: str) -> dict[str, object]:
    """The Liquid variables Auth0 documents for passwordless templates."""
    return {
        "code": context.code,
        "password": context.code,
        "link": context.link,
        "application": {"name": context.application_name},
        "request_language": context.request_language or "",
        "send": context.send,
        "phone_number": phone_number,
        "operation": "login",
    }
