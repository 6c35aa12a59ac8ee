"""Flows on the in-memory store: no HTTP, no database, a movable clock."""

from __future__ import annotations

import pytest

from nopass.core.models import SigningKey
from nopass.tokens.keys import generate_key
from tests.support.flows import World, world


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    """One RSA key for the session: making one takes longer than a flow test."""
    return generate_key()[0]


@pytest.fixture
def flows(signing_key: SigningKey) -> World:
    return world(signing_key)
