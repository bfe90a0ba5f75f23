"""The real server (``aisoule serve``) in a child process, and a tiny HTTP client for checks."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
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


class Server:
    """``with Server(cfg, log_path) as server:`` starts uvicorn and waits for /healthz."""

    def __init__(self, cfg: BenchConfig, log_path: Path) -> None:
        self.cfg = cfg
        self.log_path = log_path
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
        cmd = [
            aisoule_bin(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.cfg.port),
            "--workers",
            str(self.cfg.workers),
        ]
        self.proc = subprocess.Popen(
            cmd, env=self.cfg.app_env(), stdout=log, stderr=subprocess.STDOUT
        )
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
