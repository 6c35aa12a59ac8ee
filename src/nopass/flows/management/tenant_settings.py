"""Tenant settings through the Management API (docs/specs/management-api.md §5.4).

The settings are the ``tenant:`` section of the tenant's ``nopass apply`` document:
``friendly_name`` and ``default_audience`` (which ``/oauth/token`` uses when a request names
no audience), Auth0's settings the file names (``picture_url``, ``support_email``,
``support_url``, ``session_lifetime``, ``flags``, ...) and, under ``other_settings``, any
other Auth0 setting, kept and echoed as given. A PATCH is merged at the top level (``null``
removes a setting). nopass' own keys of that section (``name``, ``domains``,
``rate_limits``, ``test_identities``) are not tenant settings: the file sets them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nopass.config_file import TENANT_SETTINGS
from nopass.core.errors import InvalidManagementRequest
from nopass.core.models import TenantConfig
from nopass.flows.management import configuration
from nopass.flows.management.caller import ApiCall, ManagementDeps
from nopass.flows.management.configuration import Document

NAMED = ("friendly_name", "default_audience", *TENANT_SETTINGS)
OWN = frozenset({"name", "domains", "rate_limits", "test_identities", "other_settings"})
OTHERS = "other_settings"


def view(section: Mapping[str, Any]) -> dict[str, Any]:
    shown = {key: section[key] for key in NAMED if section.get(key) is not None}
    shown.update(section.get(OTHERS) or {})
    return shown


async def get_settings(tenant: TenantConfig, deps: ManagementDeps) -> dict[str, Any]:
    return view((await configuration.read(tenant, deps))["tenant"])


async def update_settings(
    tenant: TenantConfig, body: Mapping[str, Any], call: ApiCall, deps: ManagementDeps
) -> dict[str, Any]:
    for key in body:
        if key in OWN:
            raise InvalidManagementRequest(
                f"Payload validation error: '{key}' is not a tenant setting "
                "(the tenant's configuration file sets it)."
            )

    def edit(document: Document) -> str:
        section = document["tenant"]
        others = dict(section.get(OTHERS) or {})
        for key, value in body.items():
            if key in NAMED:
                section[key] = value
            elif value is None:
                others.pop(key, None)
            else:
                others[key] = value
        section[OTHERS] = others
        return "tenant"

    changed = await configuration.change(
        tenant, call, deps, edit, "Update tenant settings", settings=sorted(body)
    )
    return view(changed.document["tenant"])
