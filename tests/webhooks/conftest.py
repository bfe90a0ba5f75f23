"""A server of its own for the webhook tests: the embedded emulator's own status webhooks go to an
unreachable URL, so that the tests alone decide which statuses arrive and when."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import Server, make_server, pg_url, reset_postgres, sibling_postgres


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    backend = request.param
    url: str | None = None
    if backend == "postgresql":
        try:
            url = sibling_postgres(pg_url(), "hooks")
            reset_postgres(url)
        except Exception as exc:  # a failure, never a skip: CI must have PostgreSQL
            pytest.fail(f"PostgreSQL is not reachable at {pg_url()}: {exc!r}", pytrace=False)
    srv = make_server(
        backend,
        tmp_path_factory.mktemp("hooks"),
        database_url=url,
        AISOULE_EMULATOR_WEBHOOK_URL="http://127.0.0.1:9/",
        AISOULE_EMULATOR_WEBHOOK_RETRIES="0",
        AISOULE_RECONCILE_SECONDS="0.5",
        AISOULE_WHATSAPP_VERIFY_TOKEN="server-verify-token",
    )
    srv.cli("migrate")
    srv.start()
    yield srv
    srv.stop()
