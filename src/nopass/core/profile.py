"""The profile Auth0 gives a passwordless user at signup (docs/specs/auth0-wire.md §6.5)."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from nopass.core.channel import Channel
from nopass.core.otp import new_id

SMS_AVATAR = "https://cdn.auth0.com/avatars/default.png"


def new_user_id(channel: Channel) -> str:
    return f"{channel.user_id_prefix}|{new_id()}"


def initial_profile(channel: Channel, identifier: str) -> dict[str, Any]:
    if channel is Channel.EMAIL:
        local = identifier.split("@", 1)[0]
        digest = hashlib.md5(identifier.encode(), usedforsecurity=False).hexdigest()
        fallback = quote(f"https://cdn.auth0.com/avatars/{local[:2].lower()}.png", safe="")
        return {
            "email": identifier,
            "email_verified": True,
            "name": identifier,
            "nickname": local,
            "picture": f"https://s.gravatar.com/avatar/{digest}?s=480&r=pg&d={fallback}",
        }
    return {
        "phone_number": identifier,
        "phone_verified": True,
        "name": identifier,
        "nickname": identifier,
        "picture": SMS_AVATAR,
    }
