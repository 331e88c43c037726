"""Who may use a run folder, and with which settings: one process, and the settings it began with.

On entering (rank 0): the folder's lock is taken (``locking``), temporary files that a killed
process left are removed, and the settings are compared with ``run-settings.json``, written
by the first run in the folder. A folder holding a finished or half-finished run (a stage
done, or a checkpoint) made with other settings is refused, naming the keys that differ, unless ``train.overwrite=true``: then
the stages those settings reach run again and the change is appended to the record's
``changes``, which ``results.json`` carries.

Keys that say how to run, not what to make (``train.resume_from``, ``train.stop_after``,
``train.overwrite``, and ``teacher.require_path``, a check that changes nothing made), are not
compared.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..io import atomic_write_json, is_temp_file
from ..locking import exclusive_lock
from ..run_folder import CHECKPOINT_FILE, TEACHER_CHECKPOINT_FILE

log = logging.getLogger(__name__)

SETTINGS_FILE = "run-settings.json"
NOT_COMPARED = (
    "train.resume_from",
    "train.stop_after",
    "train.overwrite",
    "teacher.require_path",
    "teacher.checkpoint_every",
)
# Directories `models.inference.atomic_directory` writes beside a model directory it replaces.
_TEMP_DIRECTORY = re.compile(r".+\.(tmp|old)-\d+")


class RunSettingsError(ValueError):
    """The run folder holds a run made with other settings."""


@dataclass
class RunFolder:
    """What the guard found.

    Attributes:
        changes: Every settings change the folder went through under ``train.overwrite``,
            oldest first: ``{"at", "from_state", "changed": {key: [old, new]}}``.
        changed_now: This invocation changed the settings (its stages start over).
    """

    changes: list[dict[str, Any]] = field(default_factory=list)
    changed_now: bool = False


@contextlib.contextmanager
def guarded_run_folder(
    run_dir: str | Path, settings: dict[str, Any], *, overwrite: bool, rank: int = 0
) -> Iterator[RunFolder]:
    """Hold ``run_dir`` for one run with ``settings`` (nested dicts of plain values).

    Raises:
        LockError: another process is running in the folder.
        RunSettingsError: the folder's run was made with other settings and ``overwrite`` is False.
    """
    run_dir = Path(run_dir)
    if rank != 0:  # rank 0 checks and records for the whole job
        yield RunFolder()
        return
    how_to_fix = "wait for it to finish, or give this run another hydra.run.dir"
    with exclusive_lock(run_dir, "run folder", how_to_fix):
        remove_leftovers(run_dir)
        yield check_settings(run_dir, settings, overwrite)


def check_settings(run_dir: Path, settings: dict[str, Any], overwrite: bool) -> RunFolder:
    """Compare ``settings`` with the folder's record; refuse, or record the change (see module)."""
    path = run_dir / SETTINGS_FILE
    new = flatten(settings)
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if record is None:
        atomic_write_json(path, {"settings": new, "changes": []})
        return RunFolder()
    old, changes = record["settings"], record.get("changes", [])
    changed = {
        key: [old.get(key), new.get(key)]
        for key in sorted(set(old) | set(new))
        if key not in NOT_COMPARED and old.get(key) != new.get(key)
    }
    if not changed:
        return RunFolder(changes)
    if not made_anything(run_dir):  # e.g. a run that failed at once on a wrong path: nothing to lose
        atomic_write_json(path, {"settings": new, "changes": changes})
        return RunFolder(changes)
    state = "finished" if (run_dir / "results.json").is_file() else "half-finished"
    if not overwrite:
        shown = "; ".join(f"{key}: {a!r} -> {b!r}" for key, (a, b) in list(changed.items())[:8])
        more = f" (and {len(changed) - 8} more)" if len(changed) > 8 else ""
        raise RunSettingsError(
            f"run folder {run_dir} holds a {state} run made with other settings ({shown}{more}); "
            "to keep it, give this run a new hydra.run.dir; to replace its results, rerun with "
            "train.overwrite=true"
        )
    changes.append(
        {
            "at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "from_state": state,
            "changed": changed,
        }
    )
    log.warning("run folder %s: settings changed under train.overwrite: %s", run_dir, ", ".join(changed))
    atomic_write_json(path, {"settings": new, "changes": changes})
    return RunFolder(changes, changed_now=True)


def made_anything(run_dir: Path) -> bool:
    """Whether a stage finished in ``run_dir`` (its ``.meta.json``) or training checkpointed."""
    return any(run_dir.glob("*.meta.json")) or any(
        (run_dir / name).exists() for name in (CHECKPOINT_FILE, TEACHER_CHECKPOINT_FILE)
    )


def remove_leftovers(run_dir: Path) -> None:
    """Remove the temporary files and directories that a killed write left in ``run_dir``."""
    for path in sorted(run_dir.rglob("*"), reverse=True):  # deepest first
        if path.is_file() and is_temp_file(path.name):
            log.info("removing %s, left by an interrupted write", path)
            path.unlink()
        elif path.is_dir() and _TEMP_DIRECTORY.fullmatch(path.name):
            log.info("removing %s, left by an interrupted write", path)
            shutil.rmtree(path)


def flatten(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"steps": 3}}`` -> ``{"train.steps": 3}`` (the keys of command-line overrides)."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
