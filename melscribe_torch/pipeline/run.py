"""The GPL training pipeline: five resumable stages in one run directory (layout: ``run_folder``).

data -> mining -> teacher -> labels -> student; a loss that uses no teacher margin replaces
the teacher and labels stages with plain (qid, pos, neg) tuples.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..data import RetrievalSet
from ..io import atomic_write_json
from ..losses import WeightedSum, build_loss, recorded_loss_settings
from ..models import BiEncoder
from ..models.device import pick_device, resolve_precision
from ..provenance import library_versions, machine_info
from ..run_folder import (
    BEST_DIR,
    CHECKPOINT_FILE,
    GPL_TRAINING_FILE,
    HARD_NEGATIVES_FILE,
    LAST_DIR,
    METRICS_FILE,
    QUERIES_FILE,
    REQUEST_SETS,
    RESULTS_FILE,
    TEACHER_DIR,
    TUPLES_FILE,
    read_training_pairs,
    read_training_rows,
    read_validation_sets,
)
from ..settings import Settings
from ..teacher import build_teacher_loss
from ..teacher.ensemble import recorded_settings as recorded_ensemble
from ..training import (
    TrainingFiles,
    examples_from_tuples,
    known_positive_texts,
    train_bi_encoder,
    validation_metrics,
)
from ..training.distributed import barrier
from ..training.run_guard import NOT_COMPARED, RunFolder, guarded_run_folder
from .runner import StageRunner, remove
from .stages import (
    check_teacher_models,
    label,
    load_student,
    mine,
    prepare_data,
    train_teacher,
    write_tuples,
)

log = logging.getLogger(__name__)


def run_pipeline(
    run_dir: str | Path,
    settings: Settings,
    *,
    aliases: dict[str, dict],
    rank: int = 0,
    world_size: int = 1,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Run (or resume) the five stages in ``run_dir``; returns what ``results.json`` holds.

    Args:
        run_dir: The run directory (rerun in the same one to resume). One process at a time;
            a folder whose run had other settings is refused unless ``train.overwrite``
            (``training.run_guard``).
        settings: Every stage's settings (``settings_from_config``).
        aliases: Short model names -> model settings (mining retrievers and teacher.model use them).
        rank, world_size, device: This process under torchrun.
    """
    run_dir = Path(run_dir)
    settings = resolve_precisions(settings, device or pick_device())
    recorded = {**asdict(settings), "loss": recorded_loss_settings(settings.loss), "world_size": world_size}
    # Recorded only as far as it changes the labels: run folders begun before the group (or
    # before its second dense member) existed still resume.
    recorded["ensemble"] = recorded_ensemble(recorded["ensemble"])
    if recorded["ensemble"] is None:
        del recorded["ensemble"]
    with guarded_run_folder(
        run_dir, recorded, overwrite=settings.train.overwrite, rank=rank
    ) as folder:
        return _run_stages(run_dir, folder, settings, aliases, rank, world_size, device)


def what_it_makes(group: str, section) -> dict[str, Any]:
    """A settings group as a stage's hash reads it: without the keys that say how to run, not
    what to make (``run_guard.NOT_COMPARED``), so toggling them reruns no stage."""
    return {k: v for k, v in asdict(section).items() if f"{group}.{k}" not in NOT_COMPARED}


def resolve_precisions(settings: Settings, device: torch.device) -> Settings:
    """Every ``auto`` precision made ``bf16`` or ``fp32`` for `device`, before it is recorded:
    the run folder says what ran, and folders made with bf16 on bf16 hardware still resume."""
    mining, teacher, train = settings.mining, settings.teacher, settings.train
    if "auto" in (mining.precision, teacher.precision, train.precision, train.label_precision):
        log.info("precision auto: %s on this %s", resolve_precision("auto", device), device.type)
    return replace(
        settings,
        mining=replace(mining, precision=resolve_precision(mining.precision, device)),
        teacher=replace(teacher, precision=resolve_precision(teacher.precision, device)),
        train=replace(
            train,
            precision=resolve_precision(train.precision, device),
            label_precision=resolve_precision(train.label_precision, device),
        ),
    )


def _run_stages(
    run_dir: Path,
    folder: RunFolder,
    settings: Settings,
    aliases: dict[str, dict],
    rank: int,
    world_size: int,
    device: torch.device | None,
) -> dict[str, Any]:
    run_dir.mkdir(parents=True, exist_ok=True)
    data, train, seed = settings.data, settings.train, settings.seed
    loss_fn = build_loss(settings.loss)  # a wrong loss config fails before any stage runs
    if loss_fn.needs_margins:  # so does a wrong teacher loss, before mining
        t = settings.teacher
        build_teacher_loss(t.loss, t.group_size, t.batch_size)
    tic = time.perf_counter()
    student = load_student(settings.model, device)
    timings = {"load_student": time.perf_counter() - tic}
    stages = StageRunner(run_dir, rank)
    # The teacher's and the labels' models are checked before the first stage that runs, so a
    # missing one stops the run in seconds, not after mining and an hour of teacher training.
    check_teacher = None
    if loss_fn.needs_margins:
        check_teacher = partial(check_teacher_models, settings.teacher, settings.ensemble, aliases)

    stages.run(
        "data",
        QUERIES_FILE,
        asdict(data),
        lambda p: prepare_data(run_dir, data),
        preflight=check_teacher,
    )
    pairs = read_training_pairs(run_dir)
    stages.run(
        "mining",
        HARD_NEGATIVES_FILE,
        {
            "mining": asdict(settings.mining),
            "models": {n: aliases.get(n) for n in settings.mining.retrievers},
        },
        lambda p: mine(p, pairs, settings.mining, aliases, rank, world_size),
        all_ranks=True,
        preflight=check_teacher,
    )
    num_tuples = train.steps * train.batch_size * train.grad_accum * world_size
    if loss_fn.needs_margins:
        stages.run(
            "teacher",
            TEACHER_DIR,
            what_it_makes("teacher", settings.teacher),
            lambda p: train_teacher(p, run_dir, pairs, settings.teacher, aliases, stages.running),
            preflight=check_teacher,
        )
        label_settings = {"num_tuples": num_tuples, "seed": seed, "precision": train.label_precision}
        ensemble = recorded_ensemble(asdict(settings.ensemble))
        if ensemble is not None:
            # Only then: labels made by the cross-encoder alone keep their settings (and resume).
            label_settings["ensemble"] = ensemble
        stages.run(
            "labels",
            GPL_TRAINING_FILE,
            label_settings,
            lambda p: label(
                p, run_dir, pairs, num_tuples, seed, train.label_batch_size, train.label_precision,
                settings.ensemble, aliases,
            ),
        )
        rows = read_training_rows(run_dir, with_margins=True)
    else:
        # No margin is used (in-batch negatives alone): no teacher to train, no pair to score.
        log.info("the loss reads no teacher margin: teacher and labelling skipped")
        stages.run(
            "tuples",
            TUPLES_FILE,
            {"num_tuples": num_tuples, "seed": seed},
            lambda p: write_tuples(p, run_dir, num_tuples, seed),
        )
        rows = read_training_rows(run_dir, with_margins=False)
    train_settings = {
        "model": asdict(settings.model),
        "train": what_it_makes("train", train),
        "loss": recorded_loss_settings(settings.loss),
        "optim": asdict(settings.optim),
        "seed": seed,
        "world_size": world_size,
    }
    student_run = StudentRun(
        run_dir, settings, loss_fn, stages, pairs, rows, train_settings, timings, folder
    )
    stages.run(
        "train",
        RESULTS_FILE,
        train_settings,
        lambda p: student_run.train(p, student, rank, world_size),
        all_ranks=True,
    )
    results = json.loads((run_dir / RESULTS_FILE).read_text())
    results["skipped_stages"] = stages.skipped  # of this invocation
    return results


class StudentRun:
    """Stage 5: train the student on the tuples, then write ``results.json``."""

    def __init__(
        self,
        run_dir: Path,
        settings: Settings,
        loss_fn: WeightedSum,
        stages: StageRunner,
        pairs: RetrievalSet,
        rows: list[tuple],
        train_settings: dict[str, Any],
        timings: dict[str, float],
        folder: RunFolder,
    ) -> None:
        self.run_dir, self.settings, self.loss_fn, self.stages = run_dir, settings, loss_fn, stages
        self.folder = folder
        self.pairs, self.train_settings, self.timings = pairs, train_settings, timings
        self.examples = examples_from_tuples(pairs, rows)

    def clear_stale(self, path: Path, rank: int) -> None:
        """A finished run with other settings, new training tuples, or settings changed under
        train.overwrite: start over, do not resume."""
        tuples_kept = "labels" in self.stages.skipped or "tuples" in self.stages.skipped
        if rank == 0 and (path.exists() or not tuples_kept or self.folder.changed_now):
            for stale in (CHECKPOINT_FILE, METRICS_FILE, BEST_DIR, LAST_DIR):
                remove(self.run_dir / stale)
            remove(path)
        barrier()  # no rank may look for the checkpoint before it is gone

    def train(self, path: Path, student: BiEncoder, rank: int, world_size: int) -> None:
        started = time.perf_counter()
        run_dir, data, train = self.run_dir, self.settings.data, self.settings.train
        self.clear_stale(path, rank)
        valid_sets = read_validation_sets(run_dir, data.valid_seeds)
        request_valid_sets = read_validation_sets(run_dir, data.valid_seeds, REQUEST_SETS)
        summary = train_bi_encoder(
            student,
            self.examples,
            self.loss_fn,
            train,
            self.settings.optim,
            seed=self.settings.seed,
            files=TrainingFiles(run_dir / CHECKPOINT_FILE, run_dir / METRICS_FILE, run_dir / BEST_DIR),
            validate=lambda m: validation_metrics(
                m,
                valid_sets,
                request_valid_sets,
                k=10,
                batch_size=train.encode_batch_size,
                precision=train.precision,
            ),
            config=self.train_settings,
            known_positives=known_positive_texts(self.pairs) if self.loss_fn.needs_known_positives else None,
            rank=rank,
            world_size=world_size,
        )
        if summary["step"] < train.steps:
            raise SystemExit(
                f"stopped after step {summary['step']} of {train.steps} (train.stop_after); rerun in {run_dir} to resume"
            )
        if rank == 0:
            student.save(run_dir / LAST_DIR)
            atomic_write_json(path, self.results(summary, time.perf_counter() - started))

    def results(self, summary: dict[str, Any], train_seconds: float) -> dict[str, Any]:
        data = self.settings.data
        return {
            "valid_recall@10": {
                "best": summary["best_metric"],
                "last": summary["last_metric"],
                "select_metric": summary["select_metric"],
                "last_metrics": summary["last_metrics"],
                "seeds": data.valid_seeds,
            },
            "training": summary,
            "seed": self.settings.seed,
            "sources": data.train_sources,
            "num_train_requests": len(self.pairs.queries),
            "num_training_tuples": len(self.examples),
            "timings_s": {**self.timings, **self.stages.timings, "train": train_seconds},
            "skipped_stages": self.stages.skipped,
            "settings": self.train_settings,
            "settings_changes": self.folder.changes,
            "versions": library_versions(),
            "machine": machine_info(),
        }
