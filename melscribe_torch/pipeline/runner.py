"""Resumable stages: each writes an artifact into the run directory and is skipped next time.

Next to each artifact, ``<artifact>.meta.json`` holds a hash of the settings that made it
(chained with the hash of the stage before, so a changed upstream stage reruns those after
it). Rerunning in the same directory skips every stage whose artifact and hash match.
Numbers are hashed by value: 40 and 40.0 (an int on the command line, a float in YAML) are
one setting. Folders recorded before that rule carry hashes of the raw JSON, which are
accepted too, so they resume without remaking anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..io import atomic_write_json
from ..run_folder import meta_path
from ..training.distributed import barrier

log = logging.getLogger(__name__)


def settings_hash(settings: dict[str, Any]) -> str:
    """A stable hash of JSON-able settings, numbers read by value (40.0 hashes as 40)."""
    return raw_settings_hash(by_value(settings))


def raw_settings_hash(settings: Any) -> str:
    """The hash of the settings' JSON as written: the only hash of folders made before
    ``settings_hash`` read numbers by value."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def by_value(settings: Any) -> Any:
    """``settings`` with every whole float as the int it equals (bools and text untouched)."""
    if isinstance(settings, dict):
        return {key: by_value(value) for key, value in settings.items()}
    if isinstance(settings, (list, tuple)):
        return [by_value(value) for value in settings]
    if isinstance(settings, float) and settings.is_integer():
        return int(settings)
    return settings


class StageRunner:
    """Runs stages in order, skipping done ones; records timings.

    Args:
        run_dir: The run directory.
        rank: This process; only rank 0 writes meta files (stages write their own artifacts).
    """

    def __init__(self, run_dir: str | Path, rank: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.rank = rank
        self.previous = ""
        self.previous_raw = ""  # the chain of raw hashes, to recognise folders made before
        # the hash of the stage being made: a stage that saves itself part-way keys its
        # checkpoint to it, so a file left by other settings or data is not resumed
        self.running = ""
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        self._checked: list[Callable[[], None]] = []

    def meta_path(self, artifact: str) -> Path:
        return meta_path(self.run_dir, artifact)

    def is_done(self, artifact: str, digests: tuple[str, ...]) -> bool:
        meta = self.meta_path(artifact)
        if not (self.run_dir / artifact).exists() or not meta.is_file():
            return False
        return json.loads(meta.read_text()).get("hash") in digests

    def run(
        self,
        name: str,
        artifact: str,
        settings: dict[str, Any],
        make: Callable[[Path], None],
        *,
        all_ranks: bool = False,
        preflight: Callable[[], None] | None = None,
    ) -> bool:
        """Run ``make(artifact_path)`` unless the artifact was made with these settings.

        Args:
            name: Stage name (for logs and timings).
            artifact: File or directory name inside the run directory.
            settings: Everything the artifact depends on (JSON-able).
            make: Writes the artifact.
            all_ranks: Every rank runs ``make`` (a sharded stage); else rank 0 only while others wait.
            preflight: Checks what later stages need (on every rank), run once: before the
                first stage given it that runs. A stage that runs makes every later stage run
                (each hash chains the one before), so a skipped run never pays for the check.

        Returns:
            True if the stage ran, False if it was skipped.
        """
        digest = settings_hash({"settings": settings, "previous": self.previous})
        raw_digest = raw_settings_hash({"settings": settings, "previous": self.previous_raw})
        self.previous, self.previous_raw = digest, raw_digest
        path = self.run_dir / artifact
        if self.is_done(artifact, (digest, raw_digest)):
            log.info("stage %s: skipped, %s was made with the same settings", name, path)
            self.skipped.append(name)
            # the time it took when it ran, so a resumed run still reports every stage's cost
            self.timings[name] = json.loads(self.meta_path(artifact).read_text()).get("seconds", 0.0)
            return False
        if preflight is not None and preflight not in self._checked:
            preflight()
            self._checked.append(preflight)
        log.info("stage %s: running -> %s", name, path)
        self.running = digest
        tic = time.perf_counter()
        if all_ranks or self.rank == 0:
            make(path)
        barrier()
        self.timings[name] = time.perf_counter() - tic
        if self.rank == 0:
            meta = {"stage": name, "hash": digest, "seconds": self.timings[name], "settings": settings}
            atomic_write_json(self.meta_path(artifact), meta)
        barrier()
        return True


def remove(path: Path) -> None:
    """Delete a stale file or directory."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
