"""node-auth0's ``ManagementClient`` (npm ``auth0@7.1.0``, the spec's "Node v6/v7"), unmodified,
against a live ``nopass serve`` over TLS: it gets its own token by the client-credentials grant
and manages clients, resource servers, client grants, tenant settings, connections and users
(docs/specs/management-api.md §1.4, §2, §3, §5). A small node script drives it; the self-signed
CA reaches node through ``NODE_EXTRA_CA_CERTS``.

The npm package is installed once per machine into a temporary cache directory. Without node
or npm (or when npm cannot install) the test skips with a reason, and fails instead when
NOPASS_TEST_REQUIRE_SERVICES=1 (CI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from nopass.core.management import MANAGEMENT_SCOPES
from tests.support.config import MACHINE_ID, MACHINE_SECRET, machine_config
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.npm import npm_package, require_node
from tests.support.services import free_port
from tests.support.tls import TlsFiles

pytestmark = pytest.mark.slow
NODE_AUTH0_VERSION = "7.1.0"  # pinned: the latest 7.x, as the spec read it

SCRIPT = Path(__file__).with_name("node_auth0_manage.js")


def node_auth0() -> Path:
    """The ``node_modules`` holding the pinned auth0, installed with npm on first use."""
    require_node()
    return npm_package("auth0", NODE_AUTH0_VERSION).parent


@pytest.fixture
async def server(
    database_url: str, tls_files: TlsFiles, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    port = free_port()
    config = machine_config(f"https://127.0.0.1:{port}")
    config["client_grants"][1]["scope"] = list(MANAGEMENT_SCOPES)
    await prepare_database(database_url, config)
    with live_server(nopass_env(database_url), tmp_path, port=port, tls=tls_files) as live:
        yield live


async def test_node_auth0_manages_the_tenant(server: LiveServer, ca_bundle: Path) -> None:
    modules = node_auth0()
    script = SCRIPT
    env = {
        **os.environ,
        "NODE_PATH": str(modules),
        "NODE_EXTRA_CA_CERTS": str(ca_bundle),
        "DOMAIN": server.domain,
        "CLIENT_ID": MACHINE_ID,
        "SECRET": MACHINE_SECRET,
    }
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(script)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["first_api"] == {
        "name": "Auth0 Management API",
        "is_system": True,
        "identifier": f"https://{server.domain}/api/v2/",
    }
    assert len(out["api_id"]) == 24 and out["api_renamed"] == "Orders API"
    assert out["has_secret"] is True and len(out["client_id"]) == 32
    assert out["updated"] == "from node" and out["rotated"] is True
    assert "Node Worker" in out["client_names"] and "Machine App" in out["client_names"]
    assert out["grant_id"].startswith("cgr_") and out["grant_scope"] == []
    assert out["grant_id"] in out["grants"] and len(out["grants"]) == 3
    assert out["settings"]["friendly_name"] == "Acme"
    assert out["settings_read"]["support_url"] == "https://acme.example/help"
    assert out["user_id"].startswith("email|") and out["users"] == ["ada@acme.example"]
    assert out["deleted"] == 404 and out["deleted_code"] == "inexistent_client"
    assert out["system_deleted"] == 403
    # connections (docs/specs/management-api.md §5.2)
    assert out["connection_names"] == ["email", "legacy-db", "sms"]  # one a page, by next
    assert out["connection_id"].startswith("con_")
    options = out["connection_options"]
    assert options["provider"] == "outbox" and options["totp"] == {"length": 6, "time_step": 180}
    assert "name" not in options  # replaced wholesale: the old opaque key went with the rest
    assert out["connection_clients"] == [MACHINE_ID] == out["connection_read"]
    assert out["connection_deleted"] == 404
