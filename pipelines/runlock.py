"""One run per output folder at a time: an OS file lock on ``<output>/.run.lock`` held for a whole run.

The lock is ``fcntl.flock`` on the file, so the operating system releases it when the holding process
ends, however it ends (a killed run never leaves a stale lock). While it holds the lock, a run writes a
small JSON record of itself into the same file (PID, host, start time, job) so that a second run, or
``fraudwatch doctor``, can say who holds it.

A second run either waits for the lock (printing the holder) up to a bounded time, or fails at once
(``wait_timeout=0``). The lock is re-entrant within one process: ``fraudwatch run`` and the Prefect flow
it calls may both ask for it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from pipelines.errors import RunError

LOCK_FILE = ".run.lock"
DEFAULT_WAIT_SECONDS = 1800.0
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) the run lock of an output folder."""

    pid: int
    host: str
    started: str
    job: str

    def describe(self) -> str:
        return f"job {self.job!r}, PID {self.pid} on {self.host}, started {self.started}"


class RunLocked(RunError):
    """Another run holds the output folder's run lock (a transient condition: retrying may succeed)."""

    def __init__(self, message: str, *, file: Path, holder: LockHolder | None, hint: str | None = None) -> None:
        super().__init__(message, file=file, hint=hint)
        self.holder = holder


_held: dict[str, int] = {}  # resolved lock path → nesting depth, for re-entrant use in one process
_held_guard = threading.Lock()


def lock_path(output: Path) -> Path:
    return Path(output) / LOCK_FILE


def read_holder(output: Path) -> LockHolder | None:
    """The holder record in the lock file, or None (no file, empty, or being rewritten)."""
    try:
        data = json.loads(lock_path(output).read_text(encoding="utf-8") or "null")
        return LockHolder(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def current_holder(output: Path) -> LockHolder | None:
    """The holder of the lock if a run holds it now, else None (a leftover record does not count)."""
    path = lock_path(output)
    if not path.exists():
        return None
    key = str(path.resolve())
    with _held_guard:
        if key in _held:
            return read_holder(output)
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_holder(output) or LockHolder(pid=0, host="?", started="?", job="?")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def run_lock(output: Path, job: str, wait_timeout: float = DEFAULT_WAIT_SECONDS,
             on_wait: Callable[[LockHolder | None], None] | None = None) -> Iterator[LockHolder]:
    """Hold the output folder's run lock for the ``with`` block.

    Waits up to ``wait_timeout`` seconds for another run to finish (0: fail at once), calling
    ``on_wait(holder)`` once when it starts waiting. Raises :class:`RunLocked` naming the holder.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    path = lock_path(output)
    key = str(path.resolve())
    with _held_guard:
        if key in _held:
            _held[key] += 1
            reentrant = True
        else:
            reentrant = False
    if reentrant:
        try:
            yield read_holder(output) or _me(job)
        finally:
            with _held_guard:
                _held[key] -= 1
        return

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(wait_timeout, 0.0)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = read_holder(output)
                if time.monotonic() >= deadline:
                    who = holder.describe() if holder else "another run"
                    waited = f" after waiting {wait_timeout:g} s" if wait_timeout > 0 else ""
                    raise RunLocked(f"another run holds this output folder{waited}: {who}", file=path, holder=holder,
                                    hint="wait for it to finish (--wait-timeout SECONDS) or use another --output") from None
                if not told and on_wait is not None:
                    on_wait(holder)
                    told = True
                time.sleep(POLL_SECONDS)
        me = _me(job)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(me)).encode("utf-8"), 0)
        with _held_guard:
            _held[key] = 1
        try:
            yield me
        finally:
            with _held_guard:
                _held.pop(key, None)
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _me(job: str) -> LockHolder:
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return LockHolder(pid=os.getpid(), host=socket.gethostname(), started=started, job=job)
