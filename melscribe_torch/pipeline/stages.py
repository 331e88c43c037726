"""The stage bodies of the pipeline: each makes one artifact of the run folder (``run_folder``)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import torch

from .. import labeling, mining, teacher
from ..data import DataError, RetrievalSet, write_beir
from ..data.request_style import VALIDATION_LEADS, RequestRewriter
from ..data.training import (
    build_training_pairs,
    build_validation_set,
    check_no_test_clips,
    load_training_records,
    split_for_validation,
)
from ..io import atomic_write_json
from ..models import BiEncoder, CrossEncoder
from ..models.aliases import model_spec
from ..models.backbone import check_model_available
from ..teacher.checkpoint import TeacherCheckpoint, remove_teacher_checkpoint
from ..teacher.ensemble import build_teacher_scorer, check_dense_member
from ..training.distributed import gather_objects
from ..run_folder import (
    CAPTION_SETS,
    QRELS_DIR,
    QUERIES_FILE,
    REQUEST_SETS,
    TEACHER_CHECKPOINT_FILE,
    TEACHER_DIR,
    TEACHER_METRICS_FILE,
    read_mined_negatives,
    validation_dir,
)
from ..settings import DataSettings, EnsembleSettings, MiningSettings, ModelSettings, TeacherSettings

log = logging.getLogger(__name__)


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
            validation_dir(path, seed, CAPTION_SETS),
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
            validation_dir(path, seed, REQUEST_SETS),
        )
    write_beir(pairs, path, split="train", queries_file=QUERIES_FILE, qrels_dir=QRELS_DIR)


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
            spec = model_spec(name, aliases)
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
            spec = model_spec(name, aliases)
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


def check_teacher_models(
    settings: TeacherSettings, ensemble: EnsembleSettings, aliases: dict[str, dict]
) -> None:
    """Fail at once, in one line naming the setting, when the teacher (``teacher.path`` or
    ``teacher.model``) or the ensemble's dense member (``ensemble.dense``) cannot be loaded here,
    or when the recipe needs a given teacher (``teacher.require_path``) and none is given."""
    if settings.require_path and not settings.path:
        # Training one here would fit it to the student's own data: a different recipe that
        # runs to the end and looks like the measured one.
        raise ValueError(
            "teacher.path is not set, and this recipe (teacher.require_path=true) does not train "
            "its teacher on the student's data: give teacher.path=<run>/cross-encoder, a "
            "cross-encoder trained in an earlier run (docs/distillation.md)"
        )
    if settings.path:
        check_model_available(settings.path, "teacher.path")
    else:
        spec = model_spec(settings.model, aliases)
        check_model_available(spec["name_or_path"], f"teacher.model ({settings.model})")
    check_dense_member(asdict(ensemble), aliases)


def train_teacher(
    path: Path,
    run_dir: Path,
    pairs: RetrievalSet,
    settings: TeacherSettings,
    aliases: dict[str, dict],
    stage_hash: str = "",
) -> dict:
    """Stage 3: train the cross-encoder (or copy the given one) into ``cross-encoder/``.

    Training saves itself to ``teacher-checkpoint.pt`` every ``settings.checkpoint_every``
    steps, keyed to ``stage_hash``, and resumes from it; the file goes once the teacher is saved.
    """
    if settings.path:
        model = CrossEncoder.from_pretrained(settings.path)
        metrics = {"given": settings.path}
    else:
        loss_fn = teacher.build_teacher_loss(settings.loss, settings.group_size, settings.batch_size)
        spec = model_spec(settings.model, aliases)  # available: checked by check_teacher_models
        # The new relevance head draws from torch's global RNG, whose state here depends on
        # what ran before: seed it, or two runs with one config get different teachers.
        torch.manual_seed(settings.seed)
        model = CrossEncoder.from_pretrained(spec["name_or_path"])
        hard = read_mined_negatives(run_dir)
        examples = teacher.build_teacher_examples(
            pairs,
            hard,
            negatives_per_positive=settings.negatives_per_positive,
            random_negatives=settings.random_negatives,
            seed=settings.seed,
        )
        train, valid = teacher.split_examples(examples, settings.valid_fraction, seed=settings.seed)
        # Groups are built for either loss: the held-out ones measure ranking (MRR) for both.
        groups = teacher.build_teacher_groups(pairs, hard, group_size=settings.group_size, seed=settings.seed)
        train_groups, valid_groups = teacher.split_groups(groups, {query for query, _, _ in valid})
        metrics = teacher.train_cross_encoder(
            model,
            {"examples": train, "groups": train_groups}[loss_fn.trains_on],
            valid[: settings.max_valid_examples],
            loss_fn=loss_fn,
            valid_groups=valid_groups[: max(1, settings.max_valid_examples // settings.group_size)],
            steps=settings.steps,
            batch_size=settings.batch_size,
            lr=settings.lr,
            warmup_steps=settings.warmup_steps,
            precision=settings.precision,
            seed=settings.seed,
            checkpoint=TeacherCheckpoint(
                run_dir / TEACHER_CHECKPOINT_FILE, settings.checkpoint_every, stage_hash
            ),
        )
    atomic_write_json(
        run_dir / TEACHER_METRICS_FILE, {"metrics": metrics, "settings": asdict(settings)}
    )
    model.save(path)
    remove_teacher_checkpoint(run_dir / TEACHER_CHECKPOINT_FILE)
    return metrics


def label(
    path: Path,
    run_dir: Path,
    pairs: RetrievalSet,
    num_tuples: int,
    seed: int,
    batch_size: int,
    precision: str,
    ensemble: EnsembleSettings,
    aliases: dict[str, dict],
) -> None:
    """Stage 4: sample (qid, pos, neg) tuples and label their margins with the teacher.

    The teacher is the cross-encoder, with the ``ensemble`` members added when set
    (the ``ensemble`` config group); a TF-IDF member takes its idf from the training corpus.
    """
    hard = read_mined_negatives(run_dir)
    tuples = labeling.sample_training_tuples(hard, num_tuples, seed)
    cross_encoder = CrossEncoder.from_pretrained(str(run_dir / TEACHER_DIR))
    scorer = build_teacher_scorer(cross_encoder, asdict(ensemble), aliases)
    if hasattr(scorer, "fit"):  # an ensemble's TF-IDF member: idf of the training corpus
        scorer.fit(list(pairs.corpus.values()))
    margins = labeling.label_margins(
        scorer, pairs, tuples, batch_size=batch_size, precision=precision
    )
    labeling.write_gpl_training_data(path, tuples, margins)


def write_tuples(path: Path, run_dir: Path, num_tuples: int, seed: int) -> None:
    """Stages 3-4 for a loss that uses no margin: the same tuples, no teacher, no margin."""
    tuples = labeling.sample_training_tuples(read_mined_negatives(run_dir), num_tuples, seed)
    labeling.write_training_tuples(path, tuples)
