"""Read and write the sentence-transformers directory layout, without importing sentence-transformers.

A sentence-transformers model directory is a Hugging Face model directory plus:
  modules.json                       the module pipeline, e.g. Transformer ("") -> Pooling
                                     ("1_Pooling") -> optional Normalize ("2_Normalize")
  sentence_bert_config.json          {"max_seq_length": 256, "do_lower_case": false}
  1_Pooling/config.json              word_embedding_dimension + one true pooling_mode_* flag
                                     (sentence-transformers >= 6 writes {"pooling_mode": "mean"})
  config_sentence_transformers.json  versions, prompts, "similarity_fn_name" ("cosine" or "dot")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import transformers

from melscribe_torch.io import atomic_write_json

from .pooling import POOLING_MODES

# Legacy boolean keys of 1_Pooling/config.json, in the order sentence-transformers writes them,
# mapped to pooling mode names (the last three are modes `pool` does not implement).
_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# The module types sentence-transformers 3.x-5.x writes; 6.x still reads them.
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
# What a plain Hugging Face directory (no sentence-transformers files) amounts to.
ST_DEFAULTS: dict[str, Any] = {
    "is_sentence_transformers": False,
    "pooling": "mean",
    "max_seq_length": None,
    "normalize": False,
    "do_lower_case": False,
}
# The layout version we write (the 3.x format), recorded as sentence-transformers' own files do.
_LAYOUT_VERSION = "3.0.0"


def read_st_settings(path: str | Path) -> dict[str, Any]:
    """Read the encoder settings a sentence-transformers directory declares.

    Args:
        path: a model directory; a plain Hugging Face directory yields the defaults.

    Returns:
        {"is_sentence_transformers": bool (modules.json present), "pooling": str,
        "max_seq_length": int | None, "normalize": bool, "do_lower_case": bool}.
        Missing files give `ST_DEFAULTS` (mean pooling, no length, no normalization).
        "pooling" is returned as declared (e.g. "weightedmean", or "mean+max" for several
        flags); whoever uses it validates it against `POOLING_MODES`.
    """
    path = Path(path)
    modules = _read_json(path / "modules.json") or []
    bert_config = _read_json(path / "sentence_bert_config.json") or {}
    types = [module.get("type", "") for module in modules]
    pooling_dirs = [m.get("path", "") for m in modules if m.get("type", "").endswith("Pooling")]
    pooling_config = _read_json(
        path / (pooling_dirs[0] if pooling_dirs else "1_Pooling") / "config.json"
    )
    return {
        "is_sentence_transformers": bool(modules),
        "pooling": _pooling_mode(pooling_config) if pooling_config else ST_DEFAULTS["pooling"],
        "max_seq_length": bert_config.get("max_seq_length", ST_DEFAULTS["max_seq_length"]),
        # type names moved between versions (models.Normalize, base.modules.normalize.Normalize)
        "normalize": any(t.rsplit(".", 1)[-1] == "Normalize" for t in types),
        "do_lower_case": bool(bert_config.get("do_lower_case", ST_DEFAULTS["do_lower_case"])),
    }


def write_st_layout(
    path: str | Path,
    hidden_size: int,
    pooling: str,
    max_seq_length: int,
    normalize: bool,
    similarity_fn_name: str = "cosine",
    do_lower_case: bool = False,
) -> None:
    """Write the sentence-transformers files beside Hugging Face weights already in `path`.

    Args:
        path: the model directory (created if missing).
        hidden_size: the embedding dimension.
        pooling: one of `POOLING_MODES`.
        max_seq_length: truncation length in tokens.
        normalize: add a Normalize module (unit-length embeddings).
        similarity_fn_name: "cosine" or "dot", what `SentenceTransformer.similarity` will use.
        do_lower_case: lowercase texts before tokenizing.
    """
    if pooling not in POOLING_MODES:
        raise ValueError(
            f"unknown pooling mode {pooling!r}; valid modes are {', '.join(POOLING_MODES)}"
        )
    if similarity_fn_name not in ("cosine", "dot"):
        raise ValueError(
            f"similarity_fn_name must be 'cosine' or 'dot', got {similarity_fn_name!r}"
        )
    path = Path(path)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": _TRANSFORMER},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": _POOLING},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": _NORMALIZE})
        (path / "2_Normalize").mkdir(
            parents=True, exist_ok=True
        )  # sentence-transformers makes it too
    atomic_write_json(path / "modules.json", modules)
    atomic_write_json(
        path / "sentence_bert_config.json",
        {"max_seq_length": max_seq_length, "do_lower_case": do_lower_case},
    )
    pooling_config: dict[str, Any] = {"word_embedding_dimension": hidden_size}
    pooling_config.update({key: mode == pooling for key, mode in _POOLING_FLAGS.items()})
    pooling_config["include_prompt"] = True
    atomic_write_json(path / "1_Pooling" / "config.json", pooling_config)
    versions = {
        "sentence_transformers": _LAYOUT_VERSION,
        "transformers": transformers.__version__,
        "pytorch": torch.__version__,
    }
    atomic_write_json(
        path / "config_sentence_transformers.json",
        {
            "__version__": versions,
            "prompts": {},
            "default_prompt_name": None,
            "similarity_fn_name": similarity_fn_name,
        },
    )


def _pooling_mode(config: dict[str, Any]) -> str:
    if "pooling_mode" in config:  # sentence-transformers >= 6
        return str(config["pooling_mode"])
    modes = [mode for key, mode in _POOLING_FLAGS.items() if config.get(key)]
    return "+".join(modes) or "mean"


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)
