"""Property tests for POST /passwordless/start: whatever arrives, the answer is well formed.

For every generated body (JSON objects of allowed and unknown keys with arbitrary values,
valid-looking bodies with random identifiers, raw bytes, urlencoded forms):

* never a 5xx; always a JSON object;
* a 200 has exactly the documented shape (docs/specs/auth0-wire.md §12.4) and stores one challenge,
one
  outbox row and one audit event, and an email start is delivered exactly once;
* anything else is ``{"error", "error_description"}`` and writes nothing (no challenge, outbox
  or audit row) and sends nothing.

One app per test function (a fixture); hypothesis runs its examples against that app.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tests.support.config import CALLBACK, NATIVE_ID, WEB_ID, WEB_SECRET, tenant_config
from tests.support.harness import Harness, running_app
from tests.support.smtp import SmtpSink

ORIGIN = "http://127.0.0.1:8123"
OTHER_ID = "other-app-client-id"
ALLOWED = (
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "connection",
    "email",
    "phone_number",
    "send",
    "authParams",
    "captcha",
)
SEND_VALUES = ("link", "code", "link_ios", "link_android")
TABLES = ("challenges", "outbox_messages", "audit_events")
ID_PATTERN = re.compile(r"[0-9a-f]{24}")

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
    print_blob=True,
)
FUZZ_SMALL = settings(FUZZ, max_examples=100)


# --------------------------------------------------------------------------------------------
# strategies

# Long strings, some beyond the 64 KiB body limit once encoded.
huge_strings = st.builds(
    lambda ch, n: ch * n,
    st.sampled_from(["x", "é", "\u202e", "😀", "\x00", "%", "\\"]),
    st.integers(min_value=1_000, max_value=70_000),
)
# JSON may spell lone surrogates ("\ud800"); Python decodes them into unencodable strings.
surrogates = st.builds(
    lambda prefix, cp: prefix + chr(cp), st.text(max_size=3), st.integers(0xD800, 0xDFFF)
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from(["", " ", "\x00", "null", "{}", "\r\nBcc: x@example.com", "%00", "İ", "ß"])
    | huge_strings
    | surrogates
)
json_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
ascii_emails = st.from_regex(
    r"[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,12}\.[A-Za-z]{2,6}", fullmatch=True
)
any_emails = (
    ascii_emails
    | st.emails()
    | st.sampled_from(
        [
            "Ada@Example.COM",
            "ünïcode@exämple.com",
            "a@b",
            "@example.com",
            "victim@example.com\r\nBcc: evil@example.com",
            "a@example.com,b@example.com",
            " a@example.com",
        ]
    )
    | st.text(max_size=40)
)
phones = st.from_regex(r"\+[0-9]{1,15}", fullmatch=True) | st.from_regex(
    r"\+?[0-9 ()-]{0,20}", fullmatch=True
)
auth_param_maps = st.dictionaries(
    st.sampled_from(["scope", "state", "nonce", "response_type", "audience", "x"]) | st.text(),
    st.text() | st.integers() | st.booleans() | st.none(),
    max_size=4,
) | st.just({"redirect_uri": CALLBACK})

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "client_id": st.sampled_from([NATIVE_ID, WEB_ID, OTHER_ID]) | json_values,
    "client_secret": st.sampled_from([WEB_SECRET, "wrong"]) | json_values,
    "client_assertion": st.text() | json_values,
    "client_assertion_type": st.just("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    | json_values,
    "connection": st.sampled_from(["email", "sms", "legacy-db", "fax"]) | json_values,
    "email": any_emails | json_values,
    "phone_number": phones | json_values,
    "send": st.sampled_from([*SEND_VALUES, "pigeon"]) | json_values,
    "authParams": auth_param_maps | json_values,
    "captcha": json_values,
}
extra_keys = st.dictionaries(
    st.text(max_size=20).filter(lambda k: k not in ALLOWED), json_values, min_size=1, max_size=3
)
allowed_part = st.fixed_dictionaries({}, optional=FIELD_VALUES)
json_bodies = allowed_part | st.builds(lambda a, b: {**a, **b}, allowed_part, extra_keys)

header_values = st.from_regex(r"[ -~]{0,30}", fullmatch=True)


@st.composite
def valid_looking(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    """Bodies that pass the shape checks often: the real client, a real connection."""
    body: dict[str, Any] = {"client_id": NATIVE_ID}
    if draw(st.integers(0, 9)) == 0:
        body = {"client_id": WEB_ID, "client_secret": draw(st.sampled_from([WEB_SECRET, "no"]))}
    if draw(st.booleans()):
        body["connection"] = "email"
        body["email"] = draw(ascii_emails | any_emails)
        if draw(st.booleans()):
            body["send"] = draw(st.sampled_from(SEND_VALUES))
    else:
        body["connection"] = "sms"
        body["phone_number"] = draw(phones)
        if draw(st.booleans()):
            body["send"] = "code"
    if draw(st.booleans()):
        body["authParams"] = draw(auth_param_maps)
    headers = draw(
        st.fixed_dictionaries(
            {}, optional={"x-request-language": header_values, "accept-language": header_values}
        )
    )
    return body, headers


content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/vnd.api+json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
        "",
        None,
    ]
)
raw_bodies = (
    st.binary(max_size=300)
    | st.builds(
        lambda body, tail: json.dumps(body).encode() + tail,
        json_bodies,
        st.sampled_from([b"", b"}", b"\x00", b"\xff", b",", b" \n"]),
    )
    | st.builds(lambda body, n: json.dumps(body).encode()[:n], json_bodies, st.integers(0, 40))
    | st.sampled_from(
        [
            b'{"client_id": ' + b"9" * 5000 + b"}",
            b"[" * 50_000,
            b'{"a":' * 20_000,
            b"\xef\xbb\xbf{}",
            b'{"email": "a@b.co", "email": "c@d.co"}',
            b'{"client_id": "\\ud800", "connection": "email"}',
            b"NaN",
            b"null",
            b"{}" + b" " * 70_000,
        ]
    )
)

form_keys = (
    st.sampled_from(ALLOWED)
    | st.builds(lambda k: f"authParams[{k}]", st.sampled_from(["redirect_uri", "state", "", "x"]))
    | st.builds(lambda a, b: f"{a}[{b}]", st.sampled_from(ALLOWED), st.text(max_size=6))
    | st.sampled_from(["authParams[a][b]", "authParams[", "]", "[x]", "a[]"])
    | st.text(max_size=12)
)
form_values = (
    st.sampled_from([NATIVE_ID, "email", "sms", "code", "link", CALLBACK, "a@example.com"])
    | st.text(max_size=30)
    | huge_strings
)
form_pairs = st.lists(st.tuples(form_keys, form_values), max_size=8)
VALID_FORM_BASE = [("client_id", NATIVE_ID), ("connection", "email"), ("email", "f@example.com")]


# --------------------------------------------------------------------------------------------
# the invariant


@dataclass
class Probe:
    app: Harness
    sink: SmtpSink
    delivered: int = 0  # emails the sink must have received by now
    statuses: dict[int, int] = field(default_factory=dict)

    async def counts(self) -> tuple[int, ...]:
        return tuple([await self.app.count(t) for t in TABLES])

    async def post(
        self,
        content: bytes,
        content_type: str | None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent_headers = dict(headers or {})
        if content_type is not None:
            sent_headers["content-type"] = content_type
        before = await self.counts()
        mails_before = len(self.sink.received)
        response = await self.app.client.post(
            "/passwordless/start", content=content, headers=sent_headers
        )
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        body = response.json()
        assert isinstance(body, dict)
        after = await self.counts()
        if response.status_code == 200:
            assert after == tuple(n + 1 for n in before), (before, after)
            await self._check_success(body, sent_headers)
        else:
            assert 400 <= response.status_code < 500
            assert set(body) == {"error", "error_description"}, body
            assert isinstance(body["error"], str)
            assert body["error"]
            assert isinstance(body["error_description"], str)
            if response.status_code == 429:  # SMS prefix velocity: refused and audited
                assert body["error"] == "too_many_requests", body
                before = (*before[:-1], before[-1] + 1)
            assert after == before, (response.text, before, after)
            assert len(self.sink.received) == mails_before
        return response

    async def post_json(self, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        return await self.post(json.dumps(body).encode(), "application/json", headers)

    async def _check_success(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        assert isinstance(body["_id"], str)
        assert ID_PATTERN.fullmatch(body["_id"])
        if "email" in body:
            assert set(body) == {"_id", "email", "email_verified"}
            assert body["email_verified"] is False
            email = body["email"]
            assert isinstance(email, str)
            assert email == email.lower()
            self.delivered += 1
            received = await self.sink.wait_for(self.delivered)
            assert len(received) == self.delivered
            assert received[-1].recipients == [email]
        else:
            assert set(body) == {"_id", "phone_number", "phone_verified", "request_language"}
            assert isinstance(body["phone_number"], str)
            assert re.fullmatch(r"\+[0-9]{1,15}", body["phone_number"])
            assert body["phone_verified"] is False
            language = headers.get("x-request-language") or headers.get("accept-language")
            assert body["request_language"] == language

    async def finish(self) -> None:
        """Nothing arrives late: exactly the emails of the 200 answers, after a settle."""
        await asyncio.sleep(0.5)
        assert len(self.sink.received) == self.delivered


@pytest.fixture
async def probe(database_url: str, smtp_sink: SmtpSink) -> AsyncIterator[Probe]:
    config = tenant_config(ORIGIN, smtp_port=smtp_sink.port)
    # Keep the valid paths reachable for hundreds of starts from one IP.
    config["tenant"]["rate_limits"] = {
        "start_per_ip_per_hour": 100_000,
        "start_per_identity_per_10min": 100_000,
        "start_per_identity_per_day": 100_000,
        "allowlist": ["203.0.113.0/24"],
    }
    async with running_app(database_url, config) as app:
        probe = Probe(app, smtp_sink)
        yield probe
        await probe.finish()


# --------------------------------------------------------------------------------------------
# tests


@FUZZ
@given(body=json_bodies)
@example(body={"client_id": NATIVE_ID, "connection": "email", "send": "\ud800"})
async def test_arbitrary_json_bodies(probe: Probe, body: dict[str, Any]) -> None:
    response = await probe.post_json(body, {})
    unknown = [k for k in body if k not in ALLOWED]
    if unknown:
        assert response.status_code == 400
        assert response.json()["error"] == "bad.request"


@pytest.fixture
async def happy_probe(probe: Probe) -> AsyncIterator[Probe]:
    yield probe
    # Guard for the generator: the happy path (200, delivery) must really be exercised.
    assert probe.statuses.get(200, 0) >= 30, probe.statuses
    assert probe.delivered >= 10, probe.statuses


@FUZZ
@given(case=valid_looking())
@example(  # PostgreSQL text cannot hold NUL: it must not reach a text column raw
    case=(
        {
            "client_id": NATIVE_ID,
            "connection": "email",
            "email": "nul@example.com",
            "authParams": {"state": "a\x00b", "x\x00": "1"},
        },
        {},
    )
)
async def test_valid_looking_bodies(
    happy_probe: Probe, case: tuple[dict[str, Any], dict[str, str]]
) -> None:
    body, headers = case
    response = await happy_probe.post_json(body, headers)
    email = body.get("email")
    # ASCII addresses come back lower-cased as given (IDNA A-labels come back as U-labels).
    if response.status_code == 200 and isinstance(email, str) and email.isascii():
        assert response.json()["email"] == email.lower() or "xn--" in email.lower()


@FUZZ_SMALL
@given(content=raw_bodies, content_type=content_types)
@example(
    content=b'{"client_id": "\\udfff", "connection": "email"}', content_type="application/json"
)
async def test_raw_bytes(probe: Probe, content: bytes, content_type: str | None) -> None:
    await probe.post(content, content_type)


@FUZZ_SMALL
@given(pairs=form_pairs, valid_base=st.booleans())
@example(pairs=[("client_id[]", NATIVE_ID)], valid_base=True)
async def test_form_bodies(probe: Probe, pairs: list[tuple[str, str]], valid_base: bool) -> None:
    if valid_base:
        pairs = VALID_FORM_BASE + pairs
    form = "application/x-www-form-urlencoded"
    first = await probe.post(urlencode(pairs).encode(), form)
    # The order of the fields does not change the outcome (only the order of names in an
    # unknown-property message may differ). Reversing flips the order of every two fields.
    second = await probe.post(urlencode(pairs[::-1]).encode(), form)
    assert second.status_code == first.status_code, pairs
    if first.status_code != 200:
        assert second.json()["error"] == first.json()["error"], pairs


MIXED_FIELDS = {
    "authParams": ("x", "state", "s"),
    "client_id": (NATIVE_ID, "x", NATIVE_ID),
    "email": ("mixed@example.com", "x", "evil@example.com"),
}


async def test_form_field_both_plain_and_bracketed_is_refused_in_either_order(
    probe: Probe,
) -> None:
    """``X=v`` next to ``X[k]=w`` is one field sent twice (parameter pollution): refused as
    ``bad.X`` whichever comes first, like a repeated key (docs/specs/auth0-wire.md §1.2: a plain
    ``authParams`` is always ``bad.authParams``). Found by ``test_form_bodies``."""
    failures = []
    for name, (plain, key, bracketed) in MIXED_FIELDS.items():
        for plain_first in (True, False):
            pairs = [(name, plain), (f"{name}[{key}]", bracketed)]
            if not plain_first:
                pairs.reverse()
            base = {"client_id": NATIVE_ID, "connection": "email", "email": "order@example.com"}
            base.pop(name, None)
            form = urlencode([*base.items(), *pairs])
            response = await probe.post(form.encode(), "application/x-www-form-urlencoded")
            if response.status_code != 400 or response.json()["error"] != f"bad.{name}":
                failures.append(f"{form} -> {response.status_code} {response.text}")
    assert not failures, "\n".join(failures)


async def test_lone_surrogates_are_a_client_error(probe: Probe) -> None:
    """JSON may spell a lone surrogate (``"\\ud800"``); it is not text and cannot be echoed,
    stored or put in a link: a 400, never a 500. Found by the generators above."""
    failures = []
    for key in ("client_id", "send", "email", "authParams"):
        for value in ("\ud800", "a\udfffb"):
            body: dict[str, Any] = {
                "client_id": NATIVE_ID,
                "connection": "email",
                "email": "s@example.com",
            }
            body[key] = {"state": value} if key == "authParams" else value
            try:  # json.dumps escapes the surrogate, so "\udxxx" goes on the wire
                response = await probe.post_json(body, {})
                assert response.status_code == 400, response.text
            except Exception as exc:  # the transport re-raises what the app did not handle
                failures.append(f"{key}={value!r}: {type(exc).__name__}: {exc}".splitlines()[0])
    assert not failures, "\n".join(failures)
