"""CPU seconds used by groups of processes between two snapshots, from /proc (Linux only).

Groups: the process trees of given root pids (the server, the bench itself), ``postgres`` (server
processes and the backends of the bench database), and ``other``: everything else, including
backends of other databases. ``other`` is the background load that makes a run noisy.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_CLIENT_BACKEND = re.compile(r"\d+\.\d+\.\d+\.\d+\(\d+\)|\[local\]")


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    cpu: float  # user + system seconds
    start: int  # start time in clock ticks since boot: tells a reused pid apart (comm can change)
    cmdline: str = ""


def snapshot() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            # pid (comm) state ppid ... utime(14) stime(15): comm may hold spaces, split after ')'.
            head, _, tail = raw.rpartition(")")
            comm = head.split("(", 1)[1]
            cmdline = ""
            if comm.startswith("postgres"):
                cmdline = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
        except (OSError, IndexError):
            continue
        fields = tail.split()
        procs[int(entry.name)] = Proc(
            pid=int(entry.name),
            ppid=int(fields[1]),
            comm=comm,
            cpu=(int(fields[11]) + int(fields[12])) / _TICKS,
            start=int(fields[19]),
            cmdline=cmdline,
        )
    return procs


def machine_busy() -> float:
    """CPU seconds all CPUs spent busy since boot (/proc/stat: everything but idle and iowait)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(values) - values[3] - values[4]) / _TICKS


def _descendants(procs: dict[int, Proc], root: int) -> set[int]:
    out = {root}
    changed = True
    while changed:
        changed = False
        for p in procs.values():
            if p.ppid in out and p.pid not in out:
                out.add(p.pid)
                changed = True
    return out


def _is_ours(p: Proc, database: str) -> bool:
    """A postgres process working for the bench database, or a shared one (WAL, checkpoints)."""
    if not p.comm.startswith("postgres"):
        return False
    if f" {database} " in f"{p.cmdline} ":
        return True
    return not _CLIENT_BACKEND.search(p.cmdline)  # a server process, not another db's backend


def usage(
    before: dict[int, Proc],
    after: dict[int, Proc],
    roots: dict[str, int],
    database: str = "aisoule_bench",
) -> dict[str, float]:
    """CPU seconds per group, and ``total``.

    A process that started during the interval counts from zero; one that ended is lost (the
    pools keep their connections, so that is rare)."""
    groups = {name: _descendants(after, pid) for name, pid in roots.items()}
    out = dict.fromkeys([*roots, "postgres", "other"], 0.0)
    total = 0.0
    for pid, p in after.items():
        prev = before.get(pid)
        delta = p.cpu - (prev.cpu if prev is not None and prev.start == p.start else 0.0)
        if delta <= 0:
            continue
        total += delta
        for name, members in groups.items():
            if pid in members:
                out[name] += delta
                break
        else:
            out["postgres" if _is_ours(p, database) else "other"] += delta
    out["total"] = total
    return out


def wait_for_quiet(
    database: str, *, threshold: float = 0.25, max_wait: float = 180.0, window: float = 2.0
) -> float:
    """Wait until other processes use less than ``threshold`` cores; return the last reading."""
    me = os.getpid()
    deadline = time.monotonic() + max_wait
    announced = False
    while True:
        busy, before = machine_busy(), snapshot()
        time.sleep(window)
        busy, after = machine_busy() - busy, snapshot()
        ours = usage(before, after, {"bench": me}, database)["bench"]
        load = max(0.0, busy - ours) / window
        if load < threshold or time.monotonic() >= deadline:
            if announced:
                print(f" ok ({load:.2f} cores)" if load < threshold else " giving up", flush=True)
            return load
        if not announced:
            print(f"  waiting for other processes to go quiet ({load:.2f} cores busy)", end="")
            announced = True
        print(".", end="", flush=True)


class Sampler:
    """Samples /proc in a thread while a run goes on, so that processes which start and end inside
    the run (pgbench's connections) are counted too; each loses at most its last interval."""

    def __init__(self, roots: dict[str, int], database: str, interval: float = 0.25) -> None:
        self.roots = roots
        self.database = database
        self.interval = interval
        self._first: dict[int, Proc] = {}
        self._last: dict[int, Proc] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.own_cpu = 0.0  # CPU seconds of the sampling thread itself
        self._busy = 0.0

    def _take(self) -> None:
        for pid, p in snapshot().items():
            known = self._last.get(pid)
            if known is not None and known.start != p.start:
                continue  # a reused pid: keep the first process
            self._last[pid] = p

    def _loop(self) -> None:
        start = time.thread_time()
        while not self._stop.wait(self.interval):
            self._take()
        self.own_cpu = time.thread_time() - start

    def __enter__(self) -> Sampler:
        self._busy = machine_busy()
        self._first = snapshot()
        self._last = dict(self._first)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._take()
        self._busy = machine_busy() - self._busy

    def tree(self, root: int) -> list[float]:
        """CPU seconds of each process under ``root`` (not root itself), largest first."""
        members = _descendants(self._last, root) - {root}
        out = []
        for pid in members:
            p, prev = self._last[pid], self._first.get(pid)
            out.append(p.cpu - (prev.cpu if prev is not None and prev.start == p.start else 0.0))
        return sorted((c for c in out if c > 0.05), reverse=True)

    def usage(self) -> dict[str, float]:
        """Per group as :func:`usage`; ``bench`` (this process and its children) is left out of
        ``total``: the callers measure their clients exactly (rusage, process_time)."""
        out = usage(self._first, self._last, self.roots, self.database)
        # Processes too short-lived for the samples still show in the machine's busy time.
        out["other"] = max(out["other"], self._busy - (out["total"] - out["other"]))
        out["total"] = self._busy - out.pop("bench", 0.0)
        return out
