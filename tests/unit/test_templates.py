"""TemplateRenderer: Auth0 custom templates (Liquid, md_with_macros) and localised defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from nopass.core.models import Channel, Connection
from nopass.core.ports import Renderer, TemplateContext
from nopass.delivery.templates import TemplateRenderer, html_to_text, pick_language
from nopass.store.options import connection_options

LINK = "https://login.example.com/passwordless/verify_redirect?verification_code=482913&x=1"


def connection(strategy: str = "email", **options: Any) -> Connection:
    return Connection(
        tenant_id="t1",
        id="con_1",
        name=strategy,
        strategy=strategy,
        options=connection_options(strategy, options),
        enabled_clients=frozenset({"client"}),
    )


def context(
    *,
    send: str = "code",
    language: str | None = None,
    app: str = "Acme",
    recipient: str = "ada@example.com",
    lifetime: int = 180,
) -> TemplateContext:
    return TemplateContext(
        code="482913",
        link=LINK if send != "code" else "",
        application_name=app,
        request_language=language,
        send=send,
        recipient=recipient,
        lifetime_seconds=lifetime,
    )


@pytest.fixture
def renderer() -> TemplateRenderer:
    return TemplateRenderer()


def test_renderer_satisfies_the_port(renderer: TemplateRenderer) -> None:
    port: Renderer = renderer
    assert port is renderer


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("fr-FR,fr;q=0.9,en;q=0.8", "fr"),
        ("de", "de"),
        ("es-419", "es"),
        ("en-GB,en;q=0.9", "en"),
        ("it-IT,it;q=0.9", "en"),
        ("it-IT,de;q=0.5,es;q=0.7", "es"),
        ("en;q=0.1, de-AT;q=0.8", "de"),
        ("fr;q=0, es", "es"),
        ("*", "en"),
        ("DE-de", "de"),
        ("fr;q=abc, es;q=0.2", "es"),
        ("pt-BR, fr-CA;q=0.4, de;q=0.4", "fr"),
    ],
)
def test_pick_language(header: str | None, expected: str) -> None:
    assert pick_language(header) == expected


@pytest.mark.parametrize(
    ("header", "subject", "phrase"),
    [
        ("en-US", "Your Acme verification code", "expires in 3 minutes"),
        ("fr-FR,fr;q=0.9,en;q=0.8", "Votre code de vérification Acme", "expire dans 3 minutes"),
        ("de-DE,de;q=0.9", "Ihr Bestätigungscode für Acme", "läuft in 3 Minuten ab"),
        ("en;q=0.3,es-ES;q=0.9", "Tu código de verificación de Acme", "caduca en 3 minutos"),
    ],
)
def test_default_email_is_localised(
    renderer: TemplateRenderer, header: str, subject: str, phrase: str
) -> None:
    message = renderer.email(connection(), context(language=header), "login@acme.test")
    assert message.channel is Channel.EMAIL
    assert message.recipient == "ada@example.com"
    assert message.sender == "login@acme.test"
    assert message.subject == subject
    assert message.html is not None
    for part in (message.text, message.html):
        assert "482913" in part
        assert phrase in part
        assert "Acme" in part


def test_default_email_for_a_code(renderer: TemplateRenderer) -> None:
    message = renderer.email(connection(), context(lifetime=300), "login@acme.test")
    assert "Use this code to sign in to Acme" in message.text
    assert "This code expires in 5 minutes." in message.text
    assert "If you did not ask for this, you can ignore this email." in message.text
    assert message.html is not None
    assert "482913</p>" in message.html
    assert "href" not in message.html


@pytest.mark.parametrize("send", ["link", "link_ios", "link_android"])
def test_default_email_for_a_link_shows_link_and_code(
    renderer: TemplateRenderer, send: str
) -> None:
    message = renderer.email(connection(), context(send=send), "login@acme.test")
    assert message.subject == "Sign in to Acme"
    assert LINK in message.text
    assert "Or enter this code: 482913" in message.text
    assert message.html is not None
    assert f'href="{LINK.replace("&", "&amp;")}"' in message.html
    assert "482913" in message.html


def test_default_email_says_one_minute(renderer: TemplateRenderer) -> None:
    message = renderer.email(connection(), context(lifetime=60), "login@acme.test")
    assert "expires in 1 minute." in message.text


def test_default_html_escapes_a_hostile_application_name(renderer: TemplateRenderer) -> None:
    hostile = '<script>alert("x")</script> & Co'
    message = renderer.email(connection(), context(app=hostile, send="link"), "a@acme.test")
    assert message.html is not None
    assert "<script>" not in message.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in message.html
    assert hostile in message.text  # the plain-text part is not HTML
    assert message.subject == f"Sign in to {hostile}"


def test_default_html_is_self_contained(renderer: TemplateRenderer) -> None:
    message = renderer.email(connection(), context(send="link"), "a@acme.test")
    assert message.html is not None
    html = message.html.lower()
    for external in ("<link", "<img", "<script", "src=", "@import", "url("):
        assert external not in html
    assert '<html lang="en">' in html


CUSTOM_BODY = """<html><head><style>p { color: red; }</style></head><body>
<h1>Hello from {{ application.name }}</h1>
<p>Your code is <b>{{ code }}</b> (password {{ password }}), send={{ send }},
operation={{ operation }}, phone=[{{ phone_number }}]</p>
{% if request_language contains 'fr-FR' %}<p>Bonjour&nbsp;!</p>{% endif %}
<p><a href="{{ link }}">Sign in</a></p>
</body></html>"""


def custom_email(**email: str) -> Connection:
    return connection(email={"syntax": "liquid", "body": CUSTOM_BODY, **email})


def test_custom_liquid_email_renders_every_variable(renderer: TemplateRenderer) -> None:
    message = renderer.email(
        custom_email(
            subject="Welcome to {{ application.name }}",
            **{"from": "{{ application.name }} <no-reply@acme.test>"},
        ),
        context(send="link", language="fr-FR,fr;q=0.9", app="Acme & Co"),
        "default@acme.test",
    )
    assert message.subject == "Welcome to Acme & Co"
    assert message.sender == "Acme & Co <no-reply@acme.test>"
    assert message.html is not None
    assert "<h1>Hello from Acme &amp; Co</h1>" in message.html
    assert "<b>482913</b> (password 482913), send=link," in message.html
    assert "operation=login, phone=[]" in message.html
    assert "Bonjour" in message.html
    assert f'href="{LINK.replace("&", "&amp;")}"' in message.html


def test_custom_email_text_part_is_derived_from_the_html(renderer: TemplateRenderer) -> None:
    message = renderer.email(
        custom_email(), context(send="link", language="fr-FR"), "default@acme.test"
    )
    assert message.text == (
        "Hello from Acme\n\n"
        "Your code is 482913 (password 482913), send=link, operation=login, phone=[]\n\n"
        "Bonjour !\n\n"
        f"Sign in ({LINK})"
    )


def test_headers_never_contain_line_breaks(renderer: TemplateRenderer) -> None:
    evil = "Acme\r\nBcc: victim@example.com"
    message = renderer.email(
        custom_email(
            subject="Hi {{ application.name }}", **{"from": "{{ application.name }} <a@b.c>"}
        ),
        context(app=evil),
        "default@acme.test",
    )
    assert message.subject == "Hi Acme Bcc: victim@example.com"
    assert message.sender == "Acme Bcc: victim@example.com <a@b.c>"
    default = renderer.email(connection(), context(app=evil), "default@acme.test")
    assert "\n" not in default.subject


def test_custom_email_without_subject_or_from_uses_defaults(renderer: TemplateRenderer) -> None:
    message = renderer.email(custom_email(), context(language="de"), "default@acme.test")
    assert message.subject == "Ihr Bestätigungscode für Acme"
    assert message.sender == "default@acme.test"


def test_custom_email_subject_only_keeps_default_body(renderer: TemplateRenderer) -> None:
    email: Mapping[str, str] = {"subject": "Code {{ code }}"}
    message = renderer.email(connection(email=email), context(), "default@acme.test")
    assert message.subject == "Code 482913"
    assert "Use this code to sign in to Acme" in message.text


def test_each_template_source_is_parsed_once(renderer: TemplateRenderer) -> None:
    for app in ("One", "Two", "Three"):
        message = renderer.email(custom_email(), context(app=app), "default@acme.test")
        assert f"Hello from {app}" in message.text
    assert len(renderer._parsed) == 1  # the cache is keyed by the template source


def test_html_to_text() -> None:
    html = (
        "<p>Tom &amp; Jerry&#39;s\n   code:&nbsp;<b>1</b></p><br><div>"
        '<a href="https://x.test/?a=1&amp;b=2">https://x.test/?a=1&amp;b=2</a></div>'
        "<script>alert(1)</script><p>&amp;lt;kept&amp;gt;</p>"
    )
    assert html_to_text(html) == (
        "Tom & Jerry's code: 1\n\nhttps://x.test/?a=1&b=2\n\n&lt;kept&gt;"
    )


def sms_connection(**options: Any) -> Connection:
    return connection("sms", **{"from": "+15550001111", **options})


def sms_context(language: str | None = None) -> TemplateContext:
    return context(language=language, recipient="+15557654321")


def test_sms_md_with_macros(renderer: TemplateRenderer) -> None:
    template = "@@application.name@@: your code is @@password@@ (@@code@@)"
    message = renderer.sms(sms_connection(template=template), sms_context())
    assert message.channel is Channel.SMS
    assert message.recipient == "+15557654321"
    assert message.subject == ""
    assert message.html is None
    assert message.sender == "+15550001111"
    assert message.text == "Acme: your code is 482913 (482913)"


def test_sms_macros_are_the_default_syntax(renderer: TemplateRenderer) -> None:
    message = renderer.sms(
        sms_connection(syntax="md_with_macros", template="Code {{ code }} @@password@@"),
        sms_context(),
    )
    assert message.text == "Code {{ code }} 482913"


def test_sms_liquid(renderer: TemplateRenderer) -> None:
    template = (
        "{% if request_language contains 'fr' %}Votre code{% else %}Your code{% endif %} "
        "{{ code }}/{{ password }} for {{ application.name }} to {{ phone_number }} "
        "({{ send }}, {{ operation }})"
    )
    message = renderer.sms(sms_connection(syntax="liquid", template=template), sms_context("fr-FR"))
    assert message.text == "Votre code 482913/482913 for Acme to +15557654321 (code, login)"


def test_sms_liquid_does_not_html_escape(renderer: TemplateRenderer) -> None:
    message = renderer.sms(
        sms_connection(syntax="liquid", template="{{ application.name }}"),
        context(app="A & B <C>"),
    )
    assert message.text == "A & B <C>"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (None, "482913 is your Acme verification code. It expires in 3 minutes."),
        ("fr", "482913 est votre code de vérification Acme. Il expire dans 3 minutes."),
        ("de-CH", "482913 ist Ihr Bestätigungscode für Acme. Er läuft in 3 Minuten ab."),
        ("es", "482913 es tu código de verificación de Acme. Caduca en 3 minutos."),
    ],
)
def test_default_sms(renderer: TemplateRenderer, language: str | None, expected: str) -> None:
    message = renderer.sms(sms_connection(), sms_context(language))
    assert message.text == expected


def test_default_sms_without_sender(renderer: TemplateRenderer) -> None:
    message = renderer.sms(connection("sms"), sms_context())
    assert message.sender is None
