"""A fresh benchmark database: drop, create, migrate; the bench user, workspace and API key."""

from __future__ import annotations

import asyncpg

from aisoule.migrations.runner import upgrade_head
from bench.env import (
    BENCH_EMAIL,
    BENCH_PASSWORD,
    BENCH_WORKSPACE,
    BenchConfig,
    aisoule_bin,
    run,
)


async def recreate_database(cfg: BenchConfig) -> None:
    name = cfg.database_name
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing to drop a database with an unusual name: {name!r}")
    conn = await asyncpg.connect(cfg.admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def migrate(cfg: BenchConfig) -> None:
    upgrade_head(cfg.asyncpg_dsn)


def create_user(cfg: BenchConfig) -> None:
    """The owner and the workspace, through the real CLI (password hashing, default stages)."""
    out = run(
        [
            aisoule_bin(),
            "user",
            "create",
            "--email",
            BENCH_EMAIL,
            "--password",
            BENCH_PASSWORD,
            "--name",
            "Bench Owner",
            "--workspace",
            BENCH_WORKSPACE,
        ],
        env=cfg.app_env(),
    )
    print(f"  {out.strip()}")


def create_api_key(cfg: BenchConfig) -> str:
    """A new key through the real CLI (keys are shown once, so every run mints its own)."""
    out = run(
        [aisoule_bin(), "apikey", "create", "--email", BENCH_EMAIL, "--name", "bench"],
        env=cfg.app_env(),
    )
    key = out.strip().splitlines()[-1].strip()
    if not key.startswith("aisk_"):
        raise SystemExit(f"unexpected output of `aisoule apikey create`: {out!r}")
    return key


async def load_identity(cfg: BenchConfig) -> None:
    """Workspace id of the bench user and the stored hash of the newest key."""
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT m.workspace_id FROM workspace_members m JOIN users u ON u.id = m.user_id "
            "WHERE u.email = $1",
            BENCH_EMAIL,
        )
        if row is None:
            raise SystemExit(
                f"no bench user {BENCH_EMAIL} in {cfg.database_name}; run without --skip-seed"
            )
        cfg.workspace_id = str(row["workspace_id"])
        key_hash = await conn.fetchval(
            "SELECT key_hash FROM api_keys WHERE workspace_id = $1 AND prefix = $2 "
            "AND last4 = $3 ORDER BY created_at DESC LIMIT 1",
            row["workspace_id"],
            cfg.api_key[:9],
            cfg.api_key[-4:],
        )
        if key_hash is None:
            raise SystemExit("the new API key is not in the database")
        cfg.api_key_hash = key_hash
    finally:
        await conn.close()
