"""`broker dev` owns its data file: a second process on the same file refuses to start.

Two processes on one SQLite file would each recover the other's running runs as
abandoned and run them twice. An exclusive `flock` on `<data>.lock`, held for the
process's life (the kernel drops it when the process dies, even by SIGKILL), makes the
second one stop with a line naming the first one's pid and address.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import IO


def lock_path(data: Path) -> Path:
    return data.with_name(data.name + ".lock")


def hold(data: Path, url: str) -> IO[str]:
    """The open, locked lock file (keep it open), or exit naming the process holding it."""
    path = lock_path(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        sys.exit(
            f"broker dev: {data} is in use by {holder}; stop it, or pass another --data "
            "for a second server"
        )
    handle.seek(0)
    handle.truncate()
    handle.write(f"broker dev (pid {os.getpid()}, {url})")
    handle.flush()
    return handle
