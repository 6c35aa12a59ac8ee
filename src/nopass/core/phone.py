"""Where an E.164 number goes, for the SMS fraud controls (docs/specs/security.md §6): its country
(ISO 3166 region, by libphonenumber) and its prefix (country code + the next 3 digits)."""

from __future__ import annotations

import phonenumbers

UNKNOWN_COUNTRY = "ZZ"  # libphonenumber's "unknown region"


def _parse(e164: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None


def country_of(e164: str) -> str:
    """The region a number belongs to, e.g. ``US``; a number valid nowhere counts for its
    country code's main region (``+1 555…`` is ``US``); ``ZZ`` when nothing is known."""
    number = _parse(e164)
    if number is None:
        return UNKNOWN_COUNTRY
    region = phonenumbers.region_code_for_number(number)
    if (not region or region == UNKNOWN_COUNTRY) and number.country_code is not None:
        region = phonenumbers.region_code_for_country_code(number.country_code)
    return str(region or UNKNOWN_COUNTRY)


def prefix_of(e164: str) -> str:
    """Country code and the next 3 digits of the national number: ``+15557654321`` → ``1555``."""
    number = _parse(e164)
    if number is None:
        return e164.lstrip("+")[:6]
    national = phonenumbers.national_significant_number(number)
    return f"{number.country_code}{national[:3]}"
