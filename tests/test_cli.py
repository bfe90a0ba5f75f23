"""The `aisoule` command: bootstrap a server without a browser; refuse an unsafe production start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.servers import ROOT, Server, make_server


def test_user_and_apikey_create_bootstrap_a_working_key(server: Server) -> None:
    email = f"cli-{server.port}@example.com"
    out = server.cli(
        "user",
        "create",
        "--email",
        email,
        "--password",
        "a long password",
        "--name",
        "Ops",
        "--workspace",
        "CLI Shop",
    )
    assert "created user" in out.stdout
    key = server.cli(
        "apikey",
        "create",
        "--email",
        email,
        "--name",
        "bootstrap",
        "--scope",
        "contacts:read",
        "--scope",
        "contacts:write",
    ).stdout.strip()
    assert key.startswith("aisk_")
    r = httpx.post(
        f"{server.url}/v1/contacts",
        headers={"Authorization": f"Bearer {key}"},
        json={"phone": "918856879188"},
    )
    assert r.status_code == 201
    assert httpx.get(f"{server.url}/api/templates", headers={"X-API-Key": key}).status_code == 403
    bad = server.cli(
        "apikey", "create", "--email", "nobody@example.com", "--name", "x", check=False
    )
    assert bad.returncode != 0 and "no user" in bad.stderr
    bad = server.cli(
        "apikey", "create", "--email", email, "--name", "x", "--scope", "root", check=False
    )
    assert bad.returncode != 0


def test_key_never_stored_in_the_database_file(tmp_path: Path) -> None:
    srv = make_server("sqlite", tmp_path)
    srv.cli("migrate")
    srv.cli(
        "user",
        "create",
        "--email",
        "h@example.com",
        "--password",
        "a long password",
        "--name",
        "H",
        "--workspace",
        "W",
    )
    key = srv.cli("apikey", "create", "--email", "h@example.com", "--name", "k").stdout.strip()
    blob = b"".join(p.read_bytes() for p in (tmp_path / "sqlite").glob("aisoule.db*"))
    assert blob and key.encode() not in blob and key[5:].encode() not in blob


def test_production_refuses_a_missing_or_default_secret(tmp_path: Path) -> None:
    for secret in (None, "change-me", "short"):
        env = make_server("sqlite", tmp_path).env | {"AISOULE_ENV": "production"}
        env.pop("AISOULE_SECRET_KEY")
        if secret is not None:
            env["AISOULE_SECRET_KEY"] = secret
        proc = subprocess.run(
            [sys.executable, "-m", "aisoule", "serve", "--port", "1"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode != 0
        assert "AISOULE_SECRET_KEY" in proc.stderr


def test_development_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    srv = make_server("sqlite", tmp_path)
    srv.env.pop("AISOULE_SECRET_KEY")
    srv.cli("migrate")
    srv.start()
    try:
        path = Path(srv.env["AISOULE_DATA_DIR"]) / "secret_key"
        assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
        first = path.read_text()
    finally:
        srv.stop()
    srv.start()
    srv.stop()
    assert path.read_text() == first
