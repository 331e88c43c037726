"""What an index write may delete in its folder: only files the index itself wrote.

An index folder is often a folder the user also keeps other files in (the catalog CSV, notes).
So deletion is by record, never by name pattern:

- files an earlier ``manifest.json`` of the folder listed, once a new manifest replaces it;
- files a write announced in ``.index-pending.json`` before writing them (and the files its
  manifest was to replace), when that write was killed before it finished: they are removed
  at the start of the next write, unless the current manifest lists them;
- the temporary files of the atomic writes (``.<name>.<random>.tmp``).

Any other file is left alone and named in a warning. A manifest naming anything but a plain
file name of its folder (``../../x``, an absolute path) is refused, never read or deleted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from ..io import atomic_write_json, is_temp_file
from ..locking import LOCK_FILE

log = logging.getLogger(__name__)

PENDING = ".index-pending.json"


class UnsafeManifestError(ValueError):
    """A manifest names a path outside its folder."""


def member(directory: Path, name: object, listed_in: Path) -> Path:
    """``directory / name`` when ``name`` is a plain file name; else `UnsafeManifestError`."""
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise UnsafeManifestError(
            f"{listed_in} names {name!r}, which is not a file of its folder {directory}; "
            "refusing to read or delete it: rebuild the index"
        )
    return directory / name


def listed_files(directory: Path, manifest: dict | None, manifest_path: Path) -> set[str]:
    """The file names a manifest lists (each checked to be a plain name of ``directory``)."""
    if not manifest:
        return set()
    names = [entry["name"] for entry in manifest.get("files", {}).values()]
    return {member(directory, name, manifest_path).name for name in names}


def files_of_manifest(manifest_path: Path) -> set[str]:
    """The files the folder's current manifest lists; none when it has no readable manifest."""
    if not manifest_path.is_file():
        return set()
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        return listed_files(manifest_path.parent, manifest, manifest_path)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        if isinstance(error, UnsafeManifestError):
            raise
        log.warning("%s is unreadable (%r): the files it listed are kept", manifest_path, error)
        return set()


def begin_write(directory: Path, current: set[str], new: Iterable[str]) -> None:
    """Clear what killed writes left, then announce the files this write creates and replaces.

    Args:
        directory: The index folder (locked by the caller).
        current: The files the current manifest lists; never removed here.
        new: The names this write will create.
    """
    pending = directory / PENDING
    if pending.is_file():
        try:
            record = json.loads(pending.read_text(encoding="utf-8"))
            names = [*record["writing"], *record["replacing"]]
        except (ValueError, KeyError, TypeError):
            names = []
        for name in names:
            if name not in current:
                member(directory, name, pending).unlink(missing_ok=True)
    for path in directory.iterdir():
        if path.is_file() and is_temp_file(path.name):
            path.unlink()
    # A kill after the new manifest is in place still leaves the replaced files on record here.
    atomic_write_json(pending, {"writing": sorted(new), "replacing": sorted(current)})


def abandon_write(directory: Path) -> None:
    """A write that failed (and removed its own files): its announcement goes too."""
    (directory / PENDING).unlink(missing_ok=True)


def end_write(directory: Path, previous: set[str], kept: set[str], manifest: str) -> None:
    """After the new manifest is in place: remove the files it replaced, warn about foreign ones."""
    for name in previous - kept:
        (directory / name).unlink(missing_ok=True)
    (directory / PENDING).unlink(missing_ok=True)
    ours = kept | {manifest, PENDING, LOCK_FILE}
    foreign = sorted(p.name for p in directory.iterdir() if p.name not in ours)
    if foreign:
        log.warning(
            "index folder %s also holds %d file(s) the index did not write, left alone: %s",
            directory,
            len(foreign),
            ", ".join(foreign[:10]) + (" ..." if len(foreign) > 10 else ""),
        )
