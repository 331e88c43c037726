"""Evaluate retrievers on the paper's test sets: Recall@10 (mean ± std over 3 sampled test sets) and more.

    melscribe-evaluate data.root=../shared/data test_sets=[mc,mc_reco] retrievers=[tfidf,minilm-l6]
    melscribe-evaluate model=outputs/train/<run>/best        # or: python evaluate.py ... in a checkout
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from melscribe_torch.data import DataError, custom_test_set, paper_test_set
from melscribe_torch.errors import errors_in_one_line, take_debug_flag
from melscribe_torch.evaluation import build_retriever, evaluate_over_seeds
from melscribe_torch.evaluation.report import format_table, write_results
from melscribe_torch.models.aliases import load_model_aliases
from melscribe_torch.run_folder import CAPTION_SETS, REQUEST_SETS, read_validation_sets
from melscribe_torch.provenance import library_versions, machine_info

log = logging.getLogger(__name__)


# A training run's validation sets (its held-out clips: for choosing settings, never a test set).
VALIDATION_KINDS = {"valid": CAPTION_SETS, "valid_requests": REQUEST_SETS}


def validation_set(run_dir: str, kind: str):
    """seed -> the run's validation set of that seed (``<run>/validation/<kind><seed>``)."""
    return lambda seed: read_validation_sets(Path(run_dir), [seed], kind)[0]


def run(cfg: DictConfig, output_dir: str | Path | None = None) -> dict:
    """Evaluate every retriever on every test set; write results.json/results.md into ``output_dir``."""
    builders = {}
    for name in cfg.test_sets:
        if name == "custom":
            c = cfg.custom
            if OmegaConf.is_missing(c, "path"):
                raise DataError(
                    "test set custom needs your CSV: set custom.path=<file.csv> (one request and "
                    "its descriptors per row; columns custom.request_column, custom.descriptor_column)"
                )
            builders[name] = custom_test_set(c.path, c.request_column, c.descriptor_column, c.sampling, c.id_column)
        elif name in VALIDATION_KINDS:
            builders[name] = validation_set(cfg.valid.run, VALIDATION_KINDS[name])
        else:
            builders[name] = paper_test_set(name, cfg.data.root)
    names = list(cfg.retrievers) + ([str(cfg.trained_model)] if cfg.get("trained_model") else [])
    results, sources = {}, {}
    for name in names:
        retriever, sources[name] = build_retriever(
            name, load_model_aliases(), score=cfg.score, batch_size=cfg.encode.batch_size,
            precision=cfg.encode.precision,
            hybrid=OmegaConf.to_container(cfg.hybrid) if cfg.get("hybrid") else None,
            rerank=OmegaConf.to_container(cfg.rerank) if cfg.get("rerank") else None,
            ensemble=OmegaConf.to_container(cfg.ensemble) if cfg.get("ensemble") else None,
        )
        results[name] = {}
        for test_set, build in builders.items():
            log.info("evaluating %s on %s", name, test_set)
            results[name][test_set] = evaluate_over_seeds(
                retriever, build, list(cfg.seeds), list(cfg.k_values)
            )
            recall = results[name][test_set]["metrics"].get("recall@10")
            if recall is not None:
                log.info("%s on %s: recall@10 %.2f ± %.2f",
                         name, test_set, 100 * recall["mean"], 100 * recall["std"])
            # Written after every pair, so a run stopped part-way (a time limit, a crash in a
            # later retriever) keeps what it measured; "complete" says whether it got to the end.
            if output_dir is not None:
                partial = results_payload(cfg, results, sources, names, list(builders))
                write_payload(output_dir, partial)
    payload = results_payload(cfg, results, sources, names, list(builders))
    if output_dir is not None:
        write_payload(output_dir, payload)
        log.info("wrote %s", Path(output_dir) / "results.json")
    print(format_table(results))
    return payload


def results_payload(
    cfg: DictConfig, results: dict, sources: dict, names: list, test_sets: list
) -> dict:
    """What results.json holds; ``pending``: the (retriever, test set) pairs not yet measured."""
    pending = [[n, t] for n in names for t in test_sets if t not in results.get(n, {})]
    return {
        "results": results,
        "complete": not pending,
        "pending": pending,
        "models": sources,
        "seeds": list(cfg.seeds),
        "score": cfg.score,
        "data_root": str(cfg.data.root),
        "versions": library_versions(),
        "machine": machine_info(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }


def write_payload(output_dir: str | Path, payload: dict) -> None:
    """results.json and results.md; results.md names the pending pairs under its table."""
    table = format_table(payload["results"])
    if not payload["complete"]:
        pending = ", ".join(f"{n} on {t}" for n, t in payload["pending"])
        table += f"\nIncomplete, not yet measured: {pending}\n"
    write_results(output_dir, payload, table)


@hydra.main(config_path="pkg://melscribe_torch.conf", config_name="evaluate", version_base="1.3")
def evaluate_app(cfg: DictConfig) -> None:
    with errors_in_one_line():
        run(cfg, HydraConfig.get().runtime.output_dir)


def model_override_as_value(argv: list[str]) -> list[str]:
    """``model=<dir>`` names a model to evaluate, not an option of the ``model/`` config group."""
    return [f"trained_model={a.split('=', 1)[1]}" if a.startswith("model=") else a for a in argv]


def main() -> None:
    """The ``melscribe-evaluate`` console script: Hydra's command line, with ``model=<dir>`` read
    as a model; ``--debug`` shows tracebacks."""
    sys.argv = [sys.argv[0], *model_override_as_value(take_debug_flag(sys.argv[1:]))]
    evaluate_app()


if __name__ == "__main__":
    main()
