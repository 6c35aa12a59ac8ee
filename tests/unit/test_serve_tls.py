"""``nopass serve``'s TLS options, as uvicorn gets them (the refusals, exit 2, are in
``tests/cli/test_serve.py``; a live HTTPS server in ``tests/e2e/test_tls.py``)."""

from __future__ import annotations

import pytest

from nopass.cli import KEY_PASSWORD_ENV, CliError, Tls, build_parser, serve_tls
from tests.support.tls import KEY_PASSWORD, TlsFiles


def tls_of(*args: str) -> Tls | None:
    return serve_tls(build_parser().parse_args(["serve", *args]))


def test_without_a_certificate_there_is_no_tls() -> None:
    assert tls_of() is None


def test_a_certificate_and_its_key_go_to_uvicorn(tls_files: TlsFiles) -> None:
    tls = tls_of("--ssl-certfile", str(tls_files.cert), "--ssl-keyfile", str(tls_files.key))
    assert tls is not None
    assert tls.options() == {
        "ssl_certfile": str(tls_files.cert),
        "ssl_keyfile": str(tls_files.key),
        "ssl_keyfile_password": None,
    }


def test_one_file_may_hold_both(tls_files: TlsFiles) -> None:
    tls = tls_of("--ssl-certfile", str(tls_files.combined))
    assert tls is not None and tls.keyfile is None


def test_an_encrypted_key_takes_its_password_from_the_flag_or_the_environment(
    tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = ("--ssl-certfile", str(tls_files.cert), "--ssl-keyfile", str(tls_files.encrypted_key))
    flagged = tls_of(*files, "--ssl-keyfile-password", KEY_PASSWORD)
    assert flagged is not None and flagged.password == KEY_PASSWORD
    with pytest.raises(CliError) as refused:
        tls_of(*files)
    assert refused.value.code == 2
    monkeypatch.setenv(KEY_PASSWORD_ENV, KEY_PASSWORD)
    from_env = tls_of(*files)
    assert from_env is not None and from_env.password == KEY_PASSWORD
    with pytest.raises(CliError):  # the flag wins over the environment
        tls_of(*files, "--ssl-keyfile-password", "not-the-password")
