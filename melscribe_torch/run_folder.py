"""The training run's folder: every artifact's name, and the readers of what other stages wrote.

One run directory holds the five stages' artifacts::

    corpus.jsonl, qgen-queries.jsonl, qgen-qrels/train.tsv   stage 1: training pairs (BeIR, GPL names)
    validation/seed-<s>/                                     stage 1: validation sets (held-out clips)
    validation/requests-seed-<s>/                            stage 1: the same clips, request-like
    hard-negatives.jsonl                                     stage 2: mined negatives per retriever
    cross-encoder/, teacher-metrics.json                     stage 3: the teacher
    teacher-checkpoint.pt                                    stage 3, while it trains
    gpl-training-data.tsv                                    stage 4: (qid, pos, neg, margin) tuples
    training-tuples.tsv                                      stages 3-4 when the loss uses no margin:
                                                             (qid, pos, neg), no teacher
    checkpoint.pt, metrics.jsonl, best/, last/, results.json stage 5: the student
    <artifact>.meta.json                                     hash of the settings that made it

The pipeline writes it; ``select-weight`` and the recommender read a saved model's run
through this module, so a renamed artifact is renamed for all of them.
"""

from __future__ import annotations

import json
from pathlib import Path

from .data import RetrievalSet, read_beir
from .labeling.pseudo_labels import read_gpl_training_data, read_training_tuples
from .mining.hard_negatives import clip_of, read_hard_negatives

QUERIES_FILE, QRELS_DIR = "qgen-queries.jsonl", "qgen-qrels"
VALIDATION_DIR = "validation"
# Validation set directories under validation/, one per seed: the held-out clips' requests as
# captions, and the same clips' requests made request-like.
CAPTION_SETS, REQUEST_SETS = "seed-", "requests-seed-"
HARD_NEGATIVES_FILE = "hard-negatives.jsonl"
TEACHER_DIR, TEACHER_METRICS_FILE = "cross-encoder", "teacher-metrics.json"
TEACHER_CHECKPOINT_FILE = "teacher-checkpoint.pt"  # removed once the teacher is saved
GPL_TRAINING_FILE = "gpl-training-data.tsv"  # tuples with the teacher's margins
TUPLES_FILE = "training-tuples.tsv"  # the same tuples without margins (no teacher)
CHECKPOINT_FILE, METRICS_FILE = "checkpoint.pt", "metrics.jsonl"
BEST_DIR, LAST_DIR, RESULTS_FILE = "best", "last", "results.json"


def meta_path(run_dir: Path, artifact: str) -> Path:
    """``<artifact>.meta.json``: the settings (and their hash) that made ``artifact``."""
    return Path(run_dir) / f"{artifact.rstrip('/')}.meta.json"


def validation_dir(run_dir: Path, seed: int, kind: str = CAPTION_SETS) -> Path:
    return Path(run_dir) / VALIDATION_DIR / f"{kind}{seed}"


def read_training_pairs(run_dir: Path) -> RetrievalSet:
    return read_beir(run_dir, split="train", queries_file=QUERIES_FILE, qrels_dir=QRELS_DIR)


def read_validation_sets(
    run_dir: Path, seeds: list[int], kind: str = CAPTION_SETS
) -> list[RetrievalSet]:
    return [read_beir(validation_dir(run_dir, s, kind)) for s in seeds]


def read_mined_negatives(run_dir: Path) -> dict[str, dict]:
    return read_hard_negatives(Path(run_dir) / HARD_NEGATIVES_FILE)


def read_training_rows(run_dir: Path, with_margins: bool) -> list[tuple]:
    """The student's tuples: (qid, pos, neg, margin) with the teacher's margins, else (qid, pos, neg)."""
    if with_margins:
        return read_gpl_training_data(Path(run_dir) / GPL_TRAINING_FILE)
    return read_training_tuples(Path(run_dir) / TUPLES_FILE)


def training_run_split(model_dir: str | Path) -> dict | None:
    """The validation split and training clips of the run a model was saved by.

    The pipeline saves ``best/`` and ``last/`` inside its run directory, next to the
    training requests (``qgen-queries.jsonl``, ids ``<clip id>_<n>``) and the settings
    that split them (``qgen-queries.jsonl.meta.json``).

    Returns:
        ``{"valid_fraction", "split_seed", "trained_clips", "run_dir"}``, or None when
        ``model_dir`` is not inside such a run.
    """
    run_dir = Path(model_dir).parent
    queries, meta = run_dir / QUERIES_FILE, meta_path(run_dir, QUERIES_FILE)
    if not (Path(model_dir).is_dir() and queries.is_file() and meta.is_file()):
        return None
    settings = json.loads(meta.read_text())["settings"]
    with open(queries, encoding="utf-8") as lines:
        trained = {clip_of(json.loads(line)["_id"]) for line in lines if line.strip()}
    return {
        "valid_fraction": float(settings["valid_fraction"]),
        "split_seed": int(settings["split_seed"]),
        "trained_clips": trained,
        "run_dir": str(run_dir),
    }
