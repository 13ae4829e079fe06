"""Operating-system failures a user can cause, told as what happened and what to do.

Disk full, a read-only or forbidden folder, a file that vanished mid-run, a file too large: these
reach fraudwatch as ``OSError`` from Python, or as text inside a DuckDB, polars or Arrow error.
:func:`os_failure` recognises them (by errno, or by the operating system's own words in the
message) and returns a :class:`RunError` that blames the right thing (a full disk while writing
the output is never blamed on the input file); anything else returns None.
"""

from __future__ import annotations

import errno
import re

from pipelines.errors import RunError

_AFTER = "nothing was published and `latest` still points at the previous run"
_KINDS: dict[int, tuple[str, str, tuple[str, ...]]] = {
    errno.ENOSPC: ("the disk is full (no space left on the device)",
                   f"free space on that disk, or point --output at a disk with room, and run again; {_AFTER}",
                   ("no space left on device", "os error 28", "not enough space on the disk", "database or disk is full")),
    errno.EDQUOT: ("the disk quota is exceeded", f"free space within your quota and run again; {_AFTER}",
                   ("disk quota exceeded", "os error 122")),
    errno.EFBIG: ("a file grew larger than this system allows (file size limit)",
                  f"raise the file size limit (ulimit -f) or use a file system that allows larger files; {_AFTER}",
                  ("file too large", "os error 27")),
    errno.EROFS: ("the folder is on a read-only file system",
                  "choose an --output folder you can write to (or remount it read-write) and run again",
                  ("read-only file system", "os error 30")),
    errno.EACCES: ("permission denied",
                   "make the folder or file readable (landing folder) or writable (output folder) for the "
                   "account that runs fraudwatch, and run again",
                   ("permission denied", "os error 13")),
    errno.ENOENT: ("a file or folder vanished while the run was using it",
                   "the landing or output folder changed during the run (an export still being copied? a "
                   "cleanup job?); wait until it is complete and run again",
                   ("no such file or directory", "os error 2)", "os error 2 ")),
}
_KINDS[errno.EPERM] = ("operation not permitted", _KINDS[errno.EACCES][1], ("operation not permitted", "os error 1)"))
_PATH = re.compile(r"""["'](/[^"'\n]{1,400})["']""")


def os_failure(exc: BaseException) -> RunError | None:
    """A user-facing error for an operating-system failure, or None when ``exc`` is not one."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    kind = _KINDS.get(code) if isinstance(exc, OSError) else None
    if kind is None:
        lowered = text.lower()
        kind = next((k for k in _KINDS.values() if any(word in lowered for word in k[2])), None)
    if kind is None:
        return None
    message, hint, _ = kind
    path = getattr(exc, "filename", None)
    if path is None:
        match = _PATH.search(text)
        path = match.group(1) if match else None
    return RunError(message, file=path, hint=hint)


def os_failure_in_chain(exc: BaseException) -> RunError | None:
    """:func:`os_failure` of ``exc`` or of the errors it was raised from."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        found = os_failure(exc)
        if found is not None:
            return found
        exc = exc.__cause__ or exc.__context__
    return None
