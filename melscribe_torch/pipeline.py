"""The GPL training pipeline: five resumable stages in one run directory.

Run directory::

    corpus.jsonl, qgen-queries.jsonl, qgen-qrels/train.tsv   stage 1: training pairs (BeIR, GPL names)
    validation/seed-<s>/                                     stage 1: validation sets (held-out clips)
    validation/requests-seed-<s>/                            stage 1: the same clips, request-like
    hard-negatives.jsonl                                     stage 2: mined negatives per retriever
    cross-encoder/, teacher-metrics.json                     stage 3: the teacher
    gpl-training-data.tsv                                    stage 4: (qid, pos, neg, margin) tuples
    training-tuples.tsv                                      stages 3-4 when the loss uses no margin:
                                                             (qid, pos, neg), no teacher
    checkpoint.pt, metrics.jsonl, best/, last/, results.json stage 5: the student
    <artifact>.meta.json                                     hash of the settings that made it
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import labeling, mining, teacher
from .data import DataError, RetrievalSet, read_beir, write_beir
from .data.request_style import VALIDATION_LEADS, RequestRewriter
from .data.training import (
    DEFAULT_VALID_LAYOUT,
    DEFAULT_VALID_REQUEST_SOURCES,
    TRAIN_VALID_FRACTION,
    build_training_pairs,
    build_validation_set,
    check_no_test_clips,
    load_training_records,
    split_for_validation,
)
from .io import atomic_write_json
from .models import BiEncoder, CrossEncoder
from .models.backbone import check_model_available
from .provenance import library_versions, machine_info
from .training import (
    StudentLoss,
    examples_from_tuples,
    known_positive_texts,
    train_bi_encoder,
    validation_metrics,
    warmup_for,
)
from .training.checkpoint import CHECKPOINT_FILE
from .training.distributed import barrier, gather_objects
from .training.run_guard import RunFolder, guarded_run_folder
from .training.stages import StageRunner, remove

log = logging.getLogger(__name__)

QUERIES_FILE, QRELS_DIR = "qgen-queries.jsonl", "qgen-qrels"


@dataclass
class ModelSettings:
    name_or_path: str
    pooling: str = "mean"
    max_length: int = 256
    normalize: bool | None = None  # None: as the model's files say


@dataclass
class DataSettings:
    root: str
    train_sources: list[str] = field(
        default_factory=lambda: ["musiccaps", "lp-musiccaps-mc"]
    )
    valid_fraction: float = TRAIN_VALID_FRACTION
    split_seed: int = 0
    pair_seed: int = 42
    docs_per_query: int = 3
    max_records: int | None = None
    valid_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    valid_request_sources: list[str] | None = field(
        default_factory=lambda: list(DEFAULT_VALID_REQUEST_SOURCES)
    )
    valid_layout: str = DEFAULT_VALID_LAYOUT
    request_style_fraction: float = 0.0
    omit_descriptor_fraction: float = 0.0


@dataclass
class MiningSettings:
    retrievers: list[str]
    k: int = 30
    score: str = "cos"
    batch_size: int = 128
    precision: str = "bf16"
    exclude_same_clip: bool = True
    exclude_described: bool = False


@dataclass
class TeacherSettings:
    model: str = "minilm-l6"
    path: str | None = None
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-5
    warmup_steps: int = 30
    negatives_per_positive: int = 1
    random_negatives: int = 1
    precision: str = "bf16"
    valid_fraction: float = 0.05
    max_valid_examples: int = 2000
    seed: int = 0


@dataclass
class TrainSettings:
    steps: int
    batch_size: int
    grad_accum: int = 1
    precision: str = "bf16"
    dropout: float | None = None
    max_query_len: int = 64
    max_doc_len: int = 256
    warmup: int = 1000
    warmup_max_fraction: float = 0.1
    checkpoint_every: int = 500
    eval_every: int = 1000
    log_every: int = 10
    label_batch_size: int = 128
    label_precision: str = "bf16"
    encode_batch_size: int = 64
    resume_from: str | None = None
    stop_after: int | None = None
    select_metric: str = "valid_recall@10"
    ema_decay: float | None = None
    overwrite: bool = False


@dataclass
class LossSettings:
    margin_mse_weight: float = 1.0
    mnrl_weight: float = 0.0
    similarity: str = "dot"
    mnrl_scale: float = 20.0
    mnrl_similarity: str = "cos"
    mnrl_hard_negatives: bool = True
    mnrl_symmetric: bool = False
    mnrl_exclude_known_positives: bool = False
    mnrl_exclude_described: bool = False


@dataclass
class OptimSettings:
    lr: float = 2e-5
    weight_decay: float = 0.01
    decay_bias_and_norm: bool = True
    max_grad_norm: float = 1.0


def load_student(model: ModelSettings, device: torch.device | None = None) -> BiEncoder:
    """Load the student first: a wrong model name fails in seconds, before any heavy stage."""
    return BiEncoder.from_pretrained(
        model.name_or_path,
        pooling=model.pooling,
        max_length=model.max_length,
        normalize=model.normalize,
        device=device,
    )


def prepare_data(path: Path, data: DataSettings) -> None:
    """Stage 1: training pairs (BeIR layout) and validation sets from held-out clips."""
    records = load_training_records(data.root, data.train_sources)
    check_no_test_clips(records, data.root)
    if data.max_records is not None:
        records = records[: data.max_records]
    train_records, valid_records = split_for_validation(
        records, data.valid_fraction, data.split_seed, data.valid_request_sources, data.valid_layout
    )
    if not valid_records:
        raise DataError(
            f"no validation clips among {len(records)} records: raise data.valid_fraction"
        )
    fractions = (data.omit_descriptor_fraction, data.request_style_fraction)
    rewrite = RequestRewriter(*fractions, seed=data.pair_seed) if any(fractions) else None
    pairs = build_training_pairs(
        train_records, seed=data.pair_seed, docs_per_query=data.docs_per_query, rewrite=rewrite
    )
    for seed in data.valid_seeds:
        write_beir(
            build_validation_set(valid_records, seed, data.valid_request_sources, data.valid_layout),
            path / "validation" / f"{CAPTION_SETS}{seed}",
        )
        # The same clips' requests as a listener might write them: one named descriptor left
        # out, worded as a request with lead-ins training never uses; sets drawn afterwards.
        write_beir(
            build_validation_set(
                valid_records,
                seed,
                data.valid_request_sources,
                data.valid_layout,
                rewrite=RequestRewriter(1.0, 1.0, seed=seed, leads=VALIDATION_LEADS),
                name="validation-requests",
            ),
            path / "validation" / f"{REQUEST_SETS}{seed}",
        )
    write_beir(pairs, path, split="train", queries_file=QUERIES_FILE, qrels_dir=QRELS_DIR)


def read_training_pairs(run_dir: Path) -> RetrievalSet:
    return read_beir(run_dir, split="train", queries_file=QUERIES_FILE, qrels_dir=QRELS_DIR)


# Validation set directories under <run dir>/validation/, one per seed: the held-out clips'
# requests as captions, and the same clips' requests made request-like.
CAPTION_SETS, REQUEST_SETS = "seed-", "requests-seed-"


def read_validation_sets(
    run_dir: Path, seeds: list[int], kind: str = CAPTION_SETS
) -> list[RetrievalSet]:
    return [read_beir(run_dir / "validation" / f"{kind}{s}") for s in seeds]


def mine(
    path: Path,
    pairs: RetrievalSet,
    settings: MiningSettings,
    aliases: dict[str, dict],
    rank: int,
    world_size: int,
) -> None:
    """Stage 2: every rank mines its shard of requests; rank 0 gathers and writes."""
    negatives = {}
    # Dropping described sets (mining/false_negatives.py) needs spares to still keep k.
    k = 2 * settings.k if settings.exclude_described else settings.k
    for name in settings.retrievers:  # every model first: a missing one fails before any work
        if name not in ("tfidf", "bm25"):
            spec = aliases.get(name, {"name_or_path": name})
            check_model_available(spec["name_or_path"], f"mining.retrievers ({name})")
    for name in settings.retrievers:
        if name in ("tfidf", "bm25"):
            shard = mining.mine_lexical(
                pairs,
                k=k,
                method=name,
                rank=rank,
                world_size=world_size,
                same_clip=settings.exclude_same_clip,
            )
        else:
            spec = aliases.get(name, {"name_or_path": name})
            encoder = BiEncoder.from_pretrained(
                spec["name_or_path"], pooling=spec.get("pooling"), max_length=spec.get("max_length")
            )
            shard = mining.mine_with_encoder(
                encoder,
                pairs,
                k=k,
                score=settings.score,
                batch_size=settings.batch_size,
                precision=settings.precision,
                rank=rank,
                world_size=world_size,
                same_clip=settings.exclude_same_clip,
            )
            del encoder
        if settings.exclude_described:
            shard, dropped = mining.drop_described(shard, pairs, settings.k)
            log.info("%s: %d mined negatives dropped, described by their request", name, dropped)
        negatives[name] = {qid: neg for part in gather_objects(shard) for qid, neg in part.items()}
    if rank == 0:
        mining.write_hard_negatives(path, pairs, negatives)


def train_teacher(
    path: Path,
    run_dir: Path,
    pairs: RetrievalSet,
    settings: TeacherSettings,
    aliases: dict[str, dict],
) -> dict:
    """Stage 3: train the cross-encoder (or copy the given one) into ``cross-encoder/``."""
    if settings.path:
        model = CrossEncoder.from_pretrained(settings.path)
        metrics = {"given": settings.path}
    else:
        spec = aliases.get(settings.model, {"name_or_path": settings.model})
        check_model_available(spec["name_or_path"], f"teacher.model ({settings.model})")
        # The new relevance head draws from torch's global RNG, whose state here depends on
        # what ran before: seed it, or two runs with one config get different teachers.
        torch.manual_seed(settings.seed)
        model = CrossEncoder.from_pretrained(spec["name_or_path"])
        hard = mining.read_hard_negatives(run_dir / mining.HARD_NEGATIVES_FILE)
        examples = teacher.build_teacher_examples(
            pairs,
            hard,
            negatives_per_positive=settings.negatives_per_positive,
            random_negatives=settings.random_negatives,
            seed=settings.seed,
        )
        train, valid = teacher.split_examples(examples, settings.valid_fraction, seed=settings.seed)
        metrics = teacher.train_cross_encoder(
            model,
            train,
            valid[: settings.max_valid_examples],
            steps=settings.steps,
            batch_size=settings.batch_size,
            lr=settings.lr,
            warmup_steps=settings.warmup_steps,
            precision=settings.precision,
            seed=settings.seed,
        )
    atomic_write_json(
        run_dir / "teacher-metrics.json", {"metrics": metrics, "settings": asdict(settings)}
    )
    model.save(path)
    return metrics


def label(
    path: Path,
    run_dir: Path,
    pairs: RetrievalSet,
    num_tuples: int,
    seed: int,
    batch_size: int,
    precision: str,
) -> None:
    """Stage 4: sample (qid, pos, neg) tuples and label their margins with the teacher."""
    hard = mining.read_hard_negatives(run_dir / mining.HARD_NEGATIVES_FILE)
    tuples = labeling.sample_training_tuples(hard, num_tuples, seed)
    cross_encoder = CrossEncoder.from_pretrained(str(run_dir / "cross-encoder"))
    margins = labeling.label_margins(
        cross_encoder, pairs, tuples, batch_size=batch_size, precision=precision
    )
    labeling.write_gpl_training_data(path, tuples, margins)


def run_pipeline(
    run_dir: str | Path,
    *,
    model: ModelSettings,
    data: DataSettings,
    mining_settings: MiningSettings,
    teacher_settings: TeacherSettings,
    train: TrainSettings,
    loss: LossSettings,
    optim: OptimSettings,
    seed: int,
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
        model: The student to fine-tune.
        data, mining_settings, teacher_settings, train, loss, optim: The stages' settings.
        seed: Seeds tuple sampling, the data order and dropout.
        aliases: Short model names -> model settings (mining retrievers and teacher.model use them).
        rank, world_size, device: This process under torchrun.
    """
    run_dir = Path(run_dir)
    settings = {
        "model": asdict(model), "data": asdict(data), "mining": asdict(mining_settings),
        "teacher": asdict(teacher_settings), "train": asdict(train), "loss": asdict(loss),
        "optim": asdict(optim), "seed": seed, "world_size": world_size,
    }
    with guarded_run_folder(run_dir, settings, overwrite=train.overwrite, rank=rank) as folder:
        return _run_stages(
            run_dir, folder, model, data, mining_settings, teacher_settings, train, loss, optim,
            seed, aliases, rank, world_size, device,
        )


def _run_stages(
    run_dir: Path,
    folder: RunFolder,
    model: ModelSettings,
    data: DataSettings,
    mining_settings: MiningSettings,
    teacher_settings: TeacherSettings,
    train: TrainSettings,
    loss: LossSettings,
    optim: OptimSettings,
    seed: int,
    aliases: dict[str, dict],
    rank: int,
    world_size: int,
    device: torch.device | None,
) -> dict[str, Any]:
    run_dir.mkdir(parents=True, exist_ok=True)
    tic = time.perf_counter()
    student = load_student(model, device)
    timings = {"load_student": time.perf_counter() - tic}
    stages = StageRunner(run_dir, rank)

    stages.run("data", QUERIES_FILE, asdict(data), lambda p: prepare_data(run_dir, data))
    pairs = read_training_pairs(run_dir)
    valid_sets = read_validation_sets(run_dir, data.valid_seeds)
    request_valid_sets = read_validation_sets(run_dir, data.valid_seeds, REQUEST_SETS)
    stages.run(
        "mining",
        mining.HARD_NEGATIVES_FILE,
        {
            "mining": asdict(mining_settings),
            "models": {n: aliases.get(n) for n in mining_settings.retrievers},
        },
        lambda p: mine(p, pairs, mining_settings, aliases, rank, world_size),
        all_ranks=True,
    )
    num_tuples = train.steps * train.batch_size * train.grad_accum * world_size
    if loss.margin_mse_weight > 0:
        stages.run(
            "teacher",
            "cross-encoder",
            asdict(teacher_settings),
            lambda p: train_teacher(p, run_dir, pairs, teacher_settings, aliases),
        )
        label_settings = {"num_tuples": num_tuples, "seed": seed, "precision": train.label_precision}
        stages.run(
            "labels",
            labeling.GPL_TRAINING_FILE,
            label_settings,
            lambda p: label(
                p, run_dir, pairs, num_tuples, seed, train.label_batch_size, train.label_precision
            ),
        )
        rows = labeling.read_gpl_training_data(run_dir / labeling.GPL_TRAINING_FILE)
    else:
        # No margin is used (in-batch negatives alone): no teacher to train, no pair to score.
        log.info("loss uses no teacher margin (margin_mse_weight=0): teacher and labelling skipped")
        stages.run(
            "tuples",
            labeling.TUPLES_FILE,
            {"num_tuples": num_tuples, "seed": seed},
            lambda p: labeling.write_training_tuples(
                p,
                labeling.sample_training_tuples(
                    mining.read_hard_negatives(run_dir / mining.HARD_NEGATIVES_FILE), num_tuples, seed
                ),
            ),
        )
        # NaN, not a made-up number: a loss that read it would fail at once.
        rows = [(*ids, math.nan) for ids in labeling.read_training_tuples(run_dir / labeling.TUPLES_FILE)]
    examples = examples_from_tuples(pairs, rows)
    train_settings = {
        "model": asdict(model),
        "train": {k: v for k, v in asdict(train).items() if k not in ("resume_from", "stop_after", "overwrite")},
        "loss": asdict(loss),
        "optim": asdict(optim),
        "seed": seed,
        "world_size": world_size,
    }
    summary: dict[str, Any] = {}

    loss_fn = StudentLoss(**asdict(loss))

    def train_student(path: Path) -> None:
        started = time.perf_counter()
        checkpoint = run_dir / CHECKPOINT_FILE
        # A finished run with other settings, new training tuples, or settings changed under
        # train.overwrite: start over, do not resume.
        tuples_kept = "labels" in stages.skipped or "tuples" in stages.skipped
        if rank == 0 and (path.exists() or not tuples_kept or folder.changed_now):
            for stale in (
                checkpoint,
                run_dir / "metrics.jsonl",
                run_dir / "best",
                run_dir / "last",
                path,
            ):
                remove(stale)
        barrier()  # no rank may look for the checkpoint before it is gone
        summary.update(
            train_bi_encoder(
                student,
                examples,
                steps=train.steps,
                batch_size=train.batch_size,
                grad_accum=train.grad_accum,
                loss_fn=loss_fn,
                lr=optim.lr,
                weight_decay=optim.weight_decay,
                decay_bias_and_norm=optim.decay_bias_and_norm,
                warmup_steps=warmup_for(train.warmup, train.steps, train.warmup_max_fraction),
                max_grad_norm=optim.max_grad_norm,
                precision=train.precision,
                dropout=train.dropout,
                max_query_len=train.max_query_len,
                max_doc_len=train.max_doc_len,
                seed=seed,
                checkpoint_path=checkpoint,
                checkpoint_every=train.checkpoint_every,
                resume_from=train.resume_from,
                validate=lambda m: validation_metrics(
                    m,
                    valid_sets,
                    request_valid_sets,
                    k=10,
                    batch_size=train.encode_batch_size,
                    precision=train.precision,
                ),
                select_metric=train.select_metric,
                eval_every=train.eval_every,
                best_dir=run_dir / "best",
                metrics_path=run_dir / "metrics.jsonl",
                log_every=train.log_every,
                stop_after=train.stop_after,
                config=train_settings,
                rank=rank,
                world_size=world_size,
                known_positives=known_positive_texts(pairs) if loss_fn.exclude_known_positives else None,
                ema_decay=train.ema_decay,
            )
        )
        if summary["step"] < train.steps:
            raise SystemExit(
                f"stopped after step {summary['step']} of {train.steps} (train.stop_after); rerun in {run_dir} to resume"
            )
        if rank == 0:
            student.save(run_dir / "last")
            atomic_write_json(
                path,
                {
                    "valid_recall@10": {
                        "best": summary["best_metric"],
                        "last": summary["last_metric"],
                        "select_metric": summary["select_metric"],
                        "last_metrics": summary["last_metrics"],
                        "seeds": data.valid_seeds,
                    },
                    "training": summary,
                    "seed": seed,
                    "sources": data.train_sources,
                    "num_train_requests": len(pairs.queries),
                    "num_training_tuples": len(examples),
                    "timings_s": {
                        **timings,
                        **stages.timings,
                        "train": time.perf_counter() - started,
                    },
                    "skipped_stages": stages.skipped,
                    "settings": train_settings,
                    "settings_changes": folder.changes,
                    "versions": library_versions(),
                    "machine": machine_info(),
                },
            )

    stages.run("train", "results.json", train_settings, train_student, all_ranks=True)
    results = json.loads((run_dir / "results.json").read_text())
    results["skipped_stages"] = stages.skipped  # of this invocation
    return results
