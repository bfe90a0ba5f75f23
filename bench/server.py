"""The real server (``aisoule serve``) in a child process, and a tiny HTTP client for checks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.env import BenchConfig, aisoule_bin


def http_json(
    url: str, *, key: str | None = None, method: str = "GET", body: Any = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


# Serves the checkout it runs in: ``aisoule`` is imported from the working directory (first on
# sys.path, before the venv's editable install), and the log's first line names the file.
_LAUNCH = (
    "import sys, aisoule; print('aisoule code:', aisoule.__file__, flush=True); "
    "from aisoule.__main__ import main; sys.argv[0] = 'aisoule'; main()"
)


class Server:
    """``with Server(cfg, log_path) as server:`` starts uvicorn and waits for /healthz.

    With ``code`` (a checkout of aisoule), the server runs that checkout's code with this venv's
    dependencies (bench/compare.py serves two commits in turn)."""

    def __init__(self, cfg: BenchConfig, log_path: Path, code: Path | None = None) -> None:
        self.cfg = cfg
        self.log_path = log_path
        self.code = code
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Server:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.cfg.port)) == 0:
                raise SystemExit(
                    f"something already listens on 127.0.0.1:{self.cfg.port}; stop it or pick "
                    "another port (--port)"
                )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.cfg.port)]
        args += ["--workers", str(self.cfg.workers)]
        env = self.cfg.app_env()
        if self.code is None:
            cmd, cwd = [aisoule_bin(), *args], None
        else:
            cmd, cwd = [sys.executable, "-c", _LAUNCH, *args], str(self.code)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.code), env.get("PYTHONPATH", "")) if p
            )
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"the server exited ({self.proc.returncode}); see {self.log_path}:\n"
                    + self.log_path.read_text()[-3000:]
                )
            try:
                status, body = http_json(f"{self.cfg.base_url}/healthz")
                if status == 200 and body.get("status") == "ok":
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        raise SystemExit(f"the server did not become healthy in 60 s; see {self.log_path}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
