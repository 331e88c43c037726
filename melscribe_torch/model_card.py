"""Model cards: the ``README.md`` of a trained run's ``best/`` and ``last/`` model directories.

A card says what the model is (its base model), what it was trained on, with which loss, and
how it scored on the run's validation sets, read from the run folder's ``results.json`` and
``metrics.jsonl``. It follows the Hugging Face layout (YAML front matter, then Markdown), so a
model directory pushed to a hub keeps it, as sentence-transformers' own cards are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .io import atomic_write_text
from .run_folder import METRICS_FILE, RESULTS_FILE

CARD_FILE = "README.md"


def best_pass(metrics_path: Path, select_metric: str, best: float | None) -> dict[str, Any] | None:
    """The first validation row of ``metrics.jsonl`` that scored ``best`` on ``select_metric``."""
    if best is None or not metrics_path.exists():
        return None
    for line in metrics_path.read_text().splitlines():
        row = json.loads(line)
        if row.get(select_metric) == best:
            return row
    return None


def render_card(
    *,
    title: str,
    which: str,
    base_model: str,
    results: dict[str, Any],
    scores: dict[str, float],
    step: int | None,
) -> str:
    """The card's text; ``which`` says which weights of the run the directory holds."""
    settings = results["settings"]
    validation = results["valid_recall@10"]
    front = {
        "library_name": "sentence-transformers",
        "pipeline_tag": "sentence-similarity",
        "tags": ["sentence-transformers", "feature-extraction", "music", "melscribe-torch"],
    }
    score_rows = "\n".join(f"| `{name}` | {100 * value:.2f} |" for name, value in scores.items())
    at_step = f" (step {step:,})" if step is not None else ""
    sources = ", ".join(results["sources"])
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# {title}

A bi-encoder for natural-language music requests: it embeds a request ("an upbeat tropical
track with steel drums") and a song's descriptor set ("steeldrum, joyful, amateur
recording") so that a song matches a request by the similarity of the two. Trained with
melscribe-torch; this directory holds {which}.

- **Base model:** `{base_model}`
- **Training data:** {sources}: {results["num_train_requests"]:,} training requests, \
{results["num_training_tuples"]:,} training tuples (request, positive, negative), training \
seed {results["seed"]}. The validation clips are held out of the same sources; the
  MusicCaps test clips are never trained on.
- **Steps:** {results["training"]["step"]:,} of batch {settings["train"]["batch_size"]} \
(× {settings["train"]["grad_accum"]} accumulated, × {settings["world_size"]} processes)

## Loss

```yaml
{yaml.safe_dump(settings["loss"], sort_keys=False).strip()}
```

## Validation scores{at_step}

Recall@10 in %, mean over the validation seeds {validation["seeds"]}, on the run's held-out
clips (model selection, not a test set); the run keeps as `best/` the pass with the highest
`{validation["select_metric"]}`.

| metric | Recall@10 |
|---|---|
{score_rows}

## Use

```bash
melscribe-evaluate data.root=<data dir> model=<this directory>        # the paper's test sets
melscribe-recommend index --catalog songs.csv --model <this directory> --out my_index
```

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("<this directory>")
```
"""


def write_model_cards(run_dir: str | Path) -> list[Path]:
    """Write ``README.md`` into the run's ``best/`` and ``last/`` from its results; returns the cards.

    ``best/`` gets the scores of the validation pass it was saved at, ``last/`` those of the
    final pass.
    """
    run_dir = Path(run_dir)
    results = json.loads((run_dir / RESULTS_FILE).read_text())
    validation = results["valid_recall@10"]
    select = validation["select_metric"]
    base_model = results["settings"]["model"]["name_or_path"]
    best_row = best_pass(run_dir / METRICS_FILE, select, validation["best"])

    def scores_of(row: dict[str, Any]) -> dict[str, float]:
        return {k: v for k, v in row.items() if "recall@" in k and isinstance(v, (int, float))}

    cards = {
        "best": (
            "the weights of its best validation pass",
            scores_of(best_row) if best_row else {select: validation["best"]},
            best_row["step"] if best_row else None,
        ),
        "last": (
            "the weights at the end of training",
            scores_of(validation["last_metrics"]),
            results["training"]["step"],
        ),
    }
    written = []
    for name, (which, scores, step) in cards.items():
        model_dir = run_dir / name
        if not model_dir.is_dir():
            continue
        if select.startswith("ema_"):
            which += " (the weights' moving average)"
        card = model_dir / CARD_FILE
        atomic_write_text(
            card,
            render_card(
                title=f"{run_dir.name}/{name}",
                which=which,
                base_model=base_model,
                results=results,
                scores=scores,
                step=step,
            ),
        )
        written.append(card)
    return written
