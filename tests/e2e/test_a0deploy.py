"""auth0-deploy-cli (``a0deploy``, pinned), unmodified, against a live ``nopass serve`` over
TLS (docs/specs/management-api.md §5.0): it gets its own Management API token as a machine
client, exports the tenant's clients, connections, resource servers and client grants to
YAML, imports an edited file, and a second export equals the edited file (the round trip
converges; a second import changes nothing).

The npm package is installed once per machine into a temporary cache directory, as
tests/browser_js installs auth0-js. Without node or npm (or when npm cannot install) the test
skips with a reason, and fails instead when NOPASS_TEST_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from nopass.store.config_document import read_document
from nopass.store.engine import create_engine
from tests.support.config import MACHINE_ID, MACHINE_SECRET, NATIVE_ID, machine_config
from tests.support.harness import prepare_database
from tests.support.live import LiveServer, live_server, nopass_env
from tests.support.npm import npm_package, require_node
from tests.support.services import free_port
from tests.support.tls import TlsFiles

pytestmark = pytest.mark.slow

DEPLOY_CLI_VERSION = "8.44.0"  # the version docs/specs/management-api.md §5.0 was checked with
INCLUDED = ["clients", "connections", "resourceServers", "clientGrants"]
SCOPES = [
    f"{verb}:{thing}"
    for thing in ("clients", "connections", "resource_servers", "client_grants")
    for verb in ("read", "create", "update", "delete")
]


@pytest.fixture(scope="session")
def a0deploy() -> Path:
    """The pinned deploy-cli's entry point, installed with npm on first use."""
    require_node()
    return npm_package("auth0-deploy-cli", DEPLOY_CLI_VERSION, "lib/index.js") / "lib" / "index.js"


class Deploy:
    def __init__(self, entry: Path, server: LiveServer, ca: Path, work: Path) -> None:
        self.entry = entry
        self.server = server
        self.ca = ca
        self.work = work

    def run(self, *args: str) -> str:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.work),
            "NODE_EXTRA_CA_CERTS": str(self.ca),
            "AUTH0_DOMAIN": self.server.domain,
            "AUTH0_CLIENT_ID": MACHINE_ID,
            "AUTH0_CLIENT_SECRET": MACHINE_SECRET,
            "AUTH0_INCLUDED_ONLY": json.dumps(INCLUDED),
            "AUTH0_ALLOW_DELETE": "true",
        }
        node = shutil.which("node") or "node"
        done = subprocess.run(
            [node, str(self.entry), *args],
            env=env,
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-4000:]
        return output

    def export(self, folder: str) -> dict[str, Any]:
        out = self.work / folder
        self.run("export", "--format", "yaml", "--output_folder", str(out))
        exported: dict[str, Any] = yaml.safe_load((out / "tenant.yaml").read_text())
        return exported

    def import_(self, folder: str) -> str:
        return self.run("import", "--input_file", str(self.work / folder / "tenant.yaml"))


@pytest.fixture
async def server(
    database_url: str, tls_files: TlsFiles, tmp_path: Path
) -> AsyncIterator[LiveServer]:
    port = free_port()
    config = machine_config(f"https://127.0.0.1:{port}")
    config["client_grants"][1]["scope"] = SCOPES
    await prepare_database(database_url, config)
    with live_server(nopass_env(database_url), tmp_path, port=port, tls=tls_files) as live:
        yield live


async def document(database_url: str) -> dict[str, Any]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            tenant = await conn.scalar(text("SELECT id FROM tenants"))
            return await read_document(conn, str(tenant), lock=False)
    finally:
        await engine.dispose()


def by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [found] = [i for i in items if i.get("name") == name]
    return found


def canonical(exported: dict[str, Any]) -> dict[str, Any]:
    """An export with its lists in a fixed order (deploy-cli keeps the server's)."""
    keys = {"clients": "name", "connections": "name", "resourceServers": "identifier"}
    out = dict(exported)
    for section, key in keys.items():
        out[section] = sorted(exported.get(section) or [], key=lambda i: str(i[key]))
    out["clientGrants"] = sorted(
        exported.get("clientGrants") or [], key=lambda g: (g["client_id"], g["audience"])
    )
    return out


REPORTS = "https://reports.acme.example/"


def edit(exported: dict[str, Any]) -> dict[str, Any]:
    """Add a client, change a connection's options, add an API and a grant, remove a client."""
    edited = copy.deepcopy(exported)
    added = copy.deepcopy(by_name(edited["clients"], "Web App"))
    added.update(name="Added App", callbacks=["https://added.acme.example/cb"])
    edited["clients"] = [c for c in edited["clients"] if c["name"] != "Other App"] + [added]
    sms = by_name(edited["connections"], "sms")
    sms["options"]["totp"]["length"] = 8
    sms["options"]["template"] = "Your Acme code: @@password@@"
    api = copy.deepcopy(by_name(edited["resourceServers"], "Acme API"))
    api.update(name="Reports API", identifier=REPORTS)
    api["scopes"] = [{"value": "read:reports", "description": "read reports"}]
    edited["resourceServers"].append(api)
    grant = {
        "client_id": "Added App",
        "audience": REPORTS,
        "scope": ["read:reports"],
        "subject_type": "client",  # as exports show it (Auth0's default)
    }
    edited["clientGrants"] = [*edited["clientGrants"], grant]
    return edited


async def test_export_edit_import_converges(
    a0deploy: Path, server: LiveServer, ca_bundle: Path, tmp_path: Path, database_url: str
) -> None:
    deploy = Deploy(a0deploy, server, ca_bundle, tmp_path)
    exported = deploy.export("first")
    # the file lists the tenant's clients, connections, APIs and grants
    assert {c["name"] for c in exported["clients"]} == {
        "Native App",
        "Web App",
        "Other App",
        "Machine App",
    }
    assert {c["name"] for c in exported["connections"]} == {"email", "sms"}  # auth0: not here
    assert by_name(exported["connections"], "sms")["enabled_clients"] == ["Native App", "Web App"]
    assert [r["identifier"] for r in exported["resourceServers"]] == ["https://api.acme.example/"]
    assert exported["clientGrants"] == []  # the grants of AUTH0_CLIENT_ID are left out
    assert (tmp_path / "first" / "connections" / "email.html").exists()

    edited = edit(exported)
    shutil.copytree(tmp_path / "first", tmp_path / "edited")
    (tmp_path / "edited" / "tenant.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
    before = await document(database_url)
    deploy.import_("edited")

    # the server shows exactly the edits
    after = await document(database_url)
    names = {c["name"]: c["client_id"] for c in after["clients"]}
    assert set(names) == {"Native App", "Web App", "Machine App", "Added App"}
    assert {c["name"]: c["client_id"] for c in before["clients"]}.items() - names.items() == {
        ("Other App", "other-app-client-id")
    }
    sms = by_name(after["connections"], "sms")
    assert sms["options"]["totp"]["length"] == 8
    assert sms["options"]["template"] == "Your Acme code: @@password@@"
    assert sms["id"] == by_name(before["connections"], "sms")["id"]
    assert sms["enabled_clients"] == sorted([NATIVE_ID, names["Web App"]])
    assert by_name(after["connections"], "email") == by_name(before["connections"], "email")
    assert by_name(after["resource_servers"], "Reports API")["identifier"] == REPORTS
    added_grants = [g for g in after["client_grants"] if g not in before["client_grants"]]
    assert [(g["client_id"], g["audience"], g["scope"]) for g in added_grants] == [
        (names["Added App"], REPORTS, ["read:reports"])
    ]
    assert [g for g in before["client_grants"] if g not in after["client_grants"]] == []

    # exporting again gives the edited file; importing it again changes nothing
    again = deploy.export("second")
    assert canonical(again) == canonical(edited)
    deploy.import_("second")
    assert await document(database_url) == after
