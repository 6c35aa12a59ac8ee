"""npm packages the tests run (auth0-js, node-auth0, auth0-deploy-cli): each pinned version
installed once per machine into a temporary cache directory, on first use.

Without npm (or node), or when npm cannot install, the caller's test skips with a reason
(``unavailable``, which fails instead under ``NOPASS_TEST_REQUIRE_SERVICES=1``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.browser import unavailable

CACHE = Path(tempfile.gettempdir()) / "nopass-test-npm"


def require_node() -> None:
    if shutil.which("node") is None:
        unavailable("node is missing (apt-get install nodejs npm)")


def npm_package(name: str, version: str, marker: str = "package.json") -> Path:
    """The installed package's directory (``node_modules/<name>``), with ``marker`` (a path
    inside it) present and its ``package.json`` at exactly ``version``."""
    cache = CACHE / f"{name}-{version}"
    package = cache / "node_modules" / name
    if not (package / marker).exists():
        npm = shutil.which("npm")
        if npm is None:
            unavailable("npm is missing (apt-get install npm)")
        cache.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund"]
        done = subprocess.run(
            [*command, f"{name}@{version}"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not (package / marker).exists():
            unavailable(f"npm could not install {name}: {done.stderr.strip()[-500:]}")
    assert json.loads((package / "package.json").read_text())["version"] == version
    return package
