"""An exclusive lock per directory (a run folder, an index folder), held by the process.

The lock is ``fcntl.flock`` on ``<directory>/.lock``, which the kernel releases whenever the
holder exits, however it exits (an exception, Ctrl-C, ``kill -9``): a lock is never left
held by a dead process. The file also records the holder (PID, host, start time) for the
error message of whoever finds the directory busy, and a new holder that finds a dead
process's record there logs that it took the stale lock over. The file itself stays (it is
hidden and tiny); deleting it on release would let two processes lock two different files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from .io import umask_mode

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class LockError(RuntimeError):
    """The directory is in use by another process."""


@contextlib.contextmanager
def exclusive_lock(directory: str | Path, what: str, how_to_fix: str) -> Iterator[Path]:
    """Hold ``directory``'s lock for the ``with`` block.

    Args:
        directory: Created when missing.
        what: What the directory is, for the error ("run folder", "index folder").
        how_to_fix: What the user can do instead, for the error.

    Raises:
        LockError: another process holds it; the message names the holder.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, umask_mode())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise LockError(
                f"{what} {directory} is in use by {describe(read_holder(path))}; {how_to_fix}"
            ) from None
        previous = read_holder(path)
        if previous and previous.get("pid") != os.getpid():
            log.info("took over the lock of %s, which is no longer running", describe(previous))
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


def read_holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def describe(holder: dict) -> str:
    if not holder:
        return "another process (which has not recorded itself yet)"
    return f"PID {holder.get('pid')} on {holder.get('host')} (started {holder.get('started')})"
