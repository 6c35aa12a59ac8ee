"""``start_passwordless`` on the in-memory store: what a start stores, queues, audits and
signals, for email, SMS, an identity that may not sign up, and a test identity."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from nopass.core.errors import (
    DeliveryFailed,
    DeliveryFailure,
    InvalidFormat,
    RateLimited,
    UnknownProperties,
)
from nopass.core.models import Channel
from tests.support.flows import (
    EMAIL,
    MEMBERS,
    SMS,
    SMS_DIRECT,
    SMS_MEMBERS,
    T0,
    TEST_CODE,
    TEST_EMAIL,
    World,
)


async def test_email_start_stores_the_code_as_an_hmac_and_queues_its_message(flows: World) -> None:
    result = await flows.start(email="Ann@Example.com", send="link")
    assert (result.channel, result.identifier) == (Channel.EMAIL, "ann@example.com")
    stored = flows.challenge(result.id)
    [record] = flows.outbox()
    code = flows.code_of(result.id)
    assert flows.keyring.code_matches(result.id, code, stored.key_id, stored.code_hmac)
    assert code not in stored.code_hmac and not stored.phantom and stored.send == "link"
    assert stored.expires_at - stored.created_at == timedelta(seconds=180)
    assert (record.provider, record.status, record.message.recipient) == (
        "outbox",
        "stored",
        "ann@example.com",
    )
    assert record.link is not None and f"verification_code={code}" in record.link
    assert (
        record.link in record.message.text and record.message.sender == "Acme <login@acme.example>"
    )
    assert flows.event_types() == ["cls"]
    [event] = flows.events()
    assert code not in str(event.details) and "verification_code=******" in event.details["link"]
    assert flows.wakeup.event.is_set()  # the outbox worker is woken


async def test_sms_start_sends_a_code_without_a_link(flows: World) -> None:
    result = await flows.start(SMS, send="link")
    assert (result.channel, result.identifier) == (Channel.SMS, "+15551234567")
    stored = flows.challenge(result.id)
    [record] = flows.outbox()
    assert stored.send == "code"  # SMS always sends a code
    assert record.message.channel is Channel.SMS and record.link is None
    assert flows.code_of(result.id) in record.message.text
    assert flows.event_types() == ["cs"]
    assert not flows.wakeup.event.is_set()  # no email queued
    assert flows.sms.sent == []  # the outbox provider keeps it


async def test_sms_through_a_provider_is_sent_after_the_code_is_committed(flows: World) -> None:
    result = await flows.start(SMS_DIRECT)
    [message] = flows.sms.sent
    assert flows.sms.committed_codes == [1]
    stored = flows.challenge(result.id)
    [code] = re.findall(r"\b\d{6}\b", message.text)
    assert flows.keyring.code_matches(result.id, code, stored.key_id, stored.code_hmac)
    assert message.recipient == "+15551234567" and stored.voided_at is None
    assert flows.outbox() == [] and flows.event_types() == ["cs"]


async def test_a_provider_failure_voids_the_code_and_is_audited(flows: World) -> None:
    flows.sms.failure = DeliveryFailed(
        DeliveryFailure.REJECTED, status=400, provider_message="bad number", provider_code="21211"
    )
    with pytest.raises(DeliveryFailed):
        await flows.start(SMS_DIRECT)
    [stored] = flows.store.tables.challenges.values()
    assert stored.voided_at is not None
    [event] = flows.events()
    assert (event.type, event.description) == ("fn", "bad number (Code: 21211)")


async def test_a_phantom_sms_sends_nothing_through_the_provider(flows: World) -> None:
    result = await flows.start(SMS_MEMBERS)
    assert flows.challenge(result.id).phantom
    assert flows.sms.committed_codes == [] and flows.event_types() == []


async def test_a_new_start_voids_the_identitys_pending_code(flows: World) -> None:
    first = await flows.start()
    second = await flows.start()
    assert flows.challenge(first.id).voided_at is not None
    assert flows.challenge(second.id).voided_at is None


async def test_an_identity_that_may_not_sign_up_gets_a_phantom_and_nothing_is_sent(
    flows: World,
) -> None:
    result = await flows.start(MEMBERS)
    assert result.identifier == "ann@example.com"  # answers like any other start
    assert flows.challenge(result.id).phantom
    assert flows.outbox() == [] and flows.event_types() == []
    assert not flows.wakeup.event.is_set()


async def test_a_known_member_of_a_signup_disabled_connection_gets_a_real_code(
    flows: World,
) -> None:
    async with flows.store() as work:
        connection = flows.config.connections[MEMBERS].id
        await work.users.record_login(
            flows.config.tenant.id,
            connection,
            "ann@example.com",
            new_user_id="email|1",
            profile={},
            ip=None,
            now=T0,
        )
        await work.commit()
    challenge_id = (await flows.start(MEMBERS)).id
    assert not flows.challenge(challenge_id).phantom
    assert [r.challenge_id for r in flows.outbox()] == [challenge_id]


async def test_a_test_identity_stores_its_fixed_code_and_sends_nothing(flows: World) -> None:
    result = await flows.start(email=TEST_EMAIL)
    stored = flows.challenge(result.id)
    assert flows.keyring.code_matches(result.id, TEST_CODE, stored.key_id, stored.code_hmac)
    assert flows.outbox() == []
    [event] = flows.events()
    assert (event.type, event.details["test_identity"]) == ("cls", True)


async def test_an_expired_test_identity_is_an_ordinary_one(flows: World) -> None:
    flows.clock.advance(timedelta(days=1).total_seconds())
    result = await flows.start(email=TEST_EMAIL)
    stored = flows.challenge(result.id)
    assert not flows.keyring.code_matches(result.id, TEST_CODE, stored.key_id, stored.code_hmac)
    assert [r.challenge_id for r in flows.outbox()] == [result.id]


@pytest.mark.parametrize(
    ("body", "error"),
    [({"email": "not-an-email"}, InvalidFormat), ({"extra": 1}, UnknownProperties)],
)
async def test_bad_input_is_refused_and_stores_nothing(
    flows: World, body: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await flows.start(EMAIL, **body)
    assert flows.store.tables.challenges == {} and flows.outbox() == []


async def test_the_sixth_start_in_ten_minutes_is_refused_and_audited(flows: World) -> None:
    for _ in range(5):
        await flows.start()
    with pytest.raises(RateLimited) as refused:
        await flows.start()
    assert refused.value.name == "start_per_identity_per_10min"
    assert len(flows.store.tables.challenges) == 5 and len(flows.outbox()) == 5
    assert flows.event_types()[-1] == "api_limit"
