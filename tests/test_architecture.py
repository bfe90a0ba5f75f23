"""The import contracts (.importlinter) are not vacuous: each probe import breaks the contract
that names it, on a copy of the package, and the copy as it is keeps every contract."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# (module to append to, the import appended, the contract it must break)
PROBES = {
    "campaigns imports messages' repository": (
        "aisoule/campaigns/service.py",
        "import aisoule.messages.repository",
        "aisoule.messages.repository is imported only from inside aisoule.messages",
    ),
    "messages imports contacts' repository": (
        "aisoule/messages/service.py",
        "from aisoule.contacts import repository",
        "aisoule.contacts.repository is imported only from inside aisoule.contacts",
    ),
    "a repository imports the queue": (
        "aisoule/contacts/repository.py",
        "from aisoule import queue",
        "Repositories never enqueue",
    ),
    "a task reaches past its service": (
        "aisoule/messages/tasks.py",
        "from aisoule.messages import repository",
        "Endpoints, tasks and pages reach the database through a service",
    ),
    # The dashboard does not exist yet: its rule must hold as soon as it does.
    "a dashboard page imports a repository": (
        "aisoule/dashboard/pages.py",
        "from aisoule.templates import repository",
        "The dashboard calls services and reads schemas, never a repository",
    ),
}


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on ``tree``'s copy of aisoule, not the installed one: its directory comes
    first on the path (the editable install's finder comes after it), no cache."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / ".importlinter"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def broken_contracts(output: str) -> str:
    """The part of the report after its list of contracts: the broken ones, with their chains."""
    return output.partition("Broken contracts")[2]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("architecture")
    shutil.copytree(
        ROOT / "aisoule",
        root / "aisoule",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / ".importlinter", root / ".importlinter")
    yield root


def test_the_copy_keeps_every_contract(tree: Path) -> None:
    found = subprocess.run(
        [sys.executable, "-c", "import aisoule; print(aisoule.__file__)"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(found.stdout.strip()).is_relative_to(tree)
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: \d+ kept, 0 broken", result.stdout), result.stdout


@pytest.mark.parametrize("probe", list(PROBES))
def test_probe_import_breaks_its_contract(tree: Path, probe: str) -> None:
    target, line, contract = PROBES[probe]
    path = tree / target
    created = [p for p in reversed(path.relative_to(tree).parents) if not (tree / p).exists()]
    original = path.read_text() if path.exists() else None
    for package in created:
        (tree / package).mkdir()
        (tree / package / "__init__.py").touch()
    path.write_text((original or "") + f"\n{line}  # probe\n")
    try:
        result = lint(tree)
    finally:
        if original is None:
            path.unlink()
        else:
            path.write_text(original)
        for package in reversed(created):
            shutil.rmtree(tree / package)
    assert result.returncode != 0, result.stdout
    assert contract in broken_contracts(result.stdout), result.stdout + result.stderr


def test_no_route_dependency_runs_in_the_thread_pool() -> None:
    """FastAPI runs a plain ``def`` dependency (or endpoint) in its thread pool: a hop to another
    thread and back on every request (issue 9's count found one in RuntimeDep costing 4-5% of a
    send). Every dependency of every route, at any depth, and every endpoint is ``async def``."""
    import inspect

    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute

    from aisoule.app import create_app
    from aisoule.config import Settings

    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", emulator="off"))
    sync: set[str] = set()

    def walk(dep: Dependant) -> None:
        call = dep.call
        if call is not None:
            target = call if inspect.isroutine(call) else getattr(call, "__call__", call)
            if not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)):
                sync.add(
                    f"{getattr(call, '__module__', '?')}.{getattr(call, '__qualname__', call)}"
                )
        for sub in dep.dependencies:
            walk(sub)

    def routes_of(items: list[Any]) -> list[APIRoute]:
        out: list[APIRoute] = []
        for r in items:
            if isinstance(r, APIRoute):
                out.append(r)
            inner = getattr(r, "original_router", None)  # FastAPI 0.165's included routers
            if inner is not None:
                out += routes_of(list(inner.routes))
        return out

    routes = routes_of(list(app.routes))
    assert len(routes) > 20
    for route in routes:
        walk(route.dependant)
    assert not sync, f"plain def dependencies or endpoints (run in the thread pool): {sorted(sync)}"
