"""What differs between the email and SMS channels is said once, in core/channel.py."""

from __future__ import annotations

import pytest

from nopass.core.channel import Channel
from nopass.core.identity import PHONE_PATTERN
from nopass.core.models import Connection
from nopass.core.options import EmailOptions, OtherOptions, SmsOptions
from nopass.core.profile import initial_profile, new_user_id


def test_the_channel_table() -> None:
    email, sms = Channel.EMAIL, Channel.SMS
    assert (email.field, sms.field) == ("email", "phone_number")
    assert (email.pattern, sms.pattern) == (None, PHONE_PATTERN)
    assert (email.links, sms.links) == (True, False)
    assert (email.sent_event, sms.sent_event) == ("cls", "cs")
    assert new_user_id(email).startswith("email|")
    assert new_user_id(sms).startswith("sms|")


@pytest.mark.parametrize(
    ("channel", "typed", "identity"),
    [
        (Channel.EMAIL, "Ada@Example.COM", "ada@example.com"),
        (Channel.EMAIL, "not an address", None),
        (Channel.SMS, "+15557654321", "+15557654321"),
        (Channel.SMS, "5557654321", None),
    ],
)
def test_normalize(channel: Channel, typed: str, identity: str | None) -> None:
    assert channel.normalize(typed) == identity


def test_a_connections_channel_and_options_agree() -> None:
    email = Connection("t", "c1", "email", "email", EmailOptions(), frozenset())
    sms = Connection("t", "c2", "sms", "sms", SmsOptions(), frozenset())
    assert (email.channel, sms.channel) == (Channel.EMAIL, Channel.SMS)
    assert initial_profile(sms.channel, "+15557654321")["phone_verified"] is True
    with pytest.raises(ValueError, match="email options for a sms connection"):
        Connection("t", "c3", "sms", "sms", EmailOptions(), frozenset())
    legacy = Connection("t", "c4", "db", "auth0", OtherOptions("auth0"), frozenset())
    assert not legacy.is_passwordless
    with pytest.raises(ValueError):
        _ = legacy.channel
