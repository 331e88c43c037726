"""Atomic file writes: a crash mid-write leaves the previous file (or none), never half of one."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def umask_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process umask (e.g. 0o644)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temp_beside(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path`` (``.<name>.<random>.tmp``), with the umask's mode.

    ``mkstemp`` makes 0600 files; renamed into place they would stay unreadable to other users
    (a server running as another user), unlike every file ``open()`` creates.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.fchmod(fd, umask_mode())
    return fd, tmp


# Temporary files are named ``.<target name>.<8 random characters>.tmp`` (see `is_temp_file`).
TEMP_SUFFIX = ".tmp"


def is_temp_file(name: str) -> bool:
    """Whether ``name`` is one of `temp_beside`'s temporary files (a kill can leave one behind)."""
    return bool(_TEMP_NAME.fullmatch(name))


_TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
