"""Where the app listens (issue 18): `make run` on loopback only, whatever HOST and PORT say in
the environment; `make share` on every interface, and only once sign-in is configured.

Each command is the Makefile's own recipe, run by make in a checkout of its own
(tests/support/sharing.py) without its install step; which addresses it listens on is read
from the kernel's socket tables, not from its log.
"""

from __future__ import annotations

import pytest

from lib.serving.process import free_port
from tests.support.sharing import (
    auth_secrets,
    listening,
    run_make,
    start_made_app,
    start_provider,
)

pytestmark = pytest.mark.slow


def test_make_run_listens_on_loopback_only(tmp_path):
    # Containers and PaaS set these for something else: they must not publish the app.
    app = start_made_app(tmp_path / "app", "run", None, HOST="0.0.0.0", PORT=str(free_port()))
    try:
        assert listening(app.port) == {"127.0.0.1"}, app.log()
    finally:
        app.server.stop(grace_s=30)


def test_make_share_without_sign_in_refuses_in_one_line(tmp_path):
    done = run_make(tmp_path, "share", None)
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]
    assert len(ours) == 1, done.stderr
    assert ours[0].startswith("make share: not started: sign-in is not configured")
    assert "[auth]" in ours[0] and "allowed" in ours[0] and "README: Sharing" in ours[0]
    assert "Traceback" not in done.stderr and "Uvicorn" not in done.stdout


def test_make_share_without_an_allow_list_refuses(tmp_path):
    secrets = auth_secrets("http://127.0.0.1:9/.well-known/openid-configuration", allowed=())
    done = run_make(tmp_path, "share", secrets)
    assert done.returncode != 0
    [ours] = [line for line in done.stderr.splitlines() if not line.startswith("make: ***")]
    assert "[sharing] allowed must name who may sign in" in ours


def test_make_share_listens_on_every_interface_with_sign_in(tmp_path):
    provider = start_provider(tmp_path)
    try:
        app = start_made_app(tmp_path / "app", "share", auth_secrets(provider.metadata_url))
        try:
            assert listening(app.port) == {"0.0.0.0"}, app.log()
        finally:
            app.server.stop(grace_s=30)
    finally:
        provider.process.stop()

