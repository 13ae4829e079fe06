"""The landing folder is a boundary: fraudwatch reads regular files inside it and nothing else.

A symbolic link (to a file or a folder, inside or outside), a FIFO, a device or a socket anywhere
under the landing folder is refused with a message naming it (relative to the landing folder)
and never its target or content. The landing folder itself may be reached through a link.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable

from pipelines.errors import ExtractError

_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}


def check_landing(landing: Path, ignorable: Callable[[Path], bool]) -> None:
    """Walk ``landing`` without following links; raise :class:`ExtractError` at the first entry that
    is not a regular file or a real folder (entries ``ignorable`` says are never read are skipped)."""
    root = Path(landing)
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise ExtractError(f"cannot list the folder: {exc.strerror}", file=folder,
                               hint="check that the folder exists and that you may read it") from None
        for entry in entries:
            path = Path(entry.path)
            if ignorable(path):
                continue
            shown = path.relative_to(root).as_posix()
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise ExtractError(
                    f"{shown} is a symbolic link; fraudwatch reads only regular files inside the landing folder",
                    file=root, hint="copy the file into the landing folder instead of linking to it")
            if stat.S_ISDIR(mode):
                pending.append(path)
            elif not stat.S_ISREG(mode):
                kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
                raise ExtractError(f"{shown} is {kind}; fraudwatch reads only regular files", file=root,
                                   hint="put the exported file itself into the landing folder")
