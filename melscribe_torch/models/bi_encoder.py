"""One shared encoder for requests and descriptor sets: backbone -> pooling -> optional L2 norm.

Requests and songs are scored by the dot product of their embeddings (cosine when
`normalize` is on). A saved model is also a valid sentence-transformers directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .backbone import hub_offline, load_backbone, max_input_length, resolve_model_path
from .device import pick_device
from .inference import (
    atomic_directory,
    autocast_context,
    check_texts,
    run_length_sorted,
    token_counts,
)
from .pooling import POOLING_MODES, pool
from .st_layout import ST_DEFAULTS, read_st_settings, write_st_layout

# Used when neither the caller nor the model directory sets a length: requests and
# descriptor sets are short, and attention cost grows with the square of the length.
DEFAULT_MAX_LENGTH = 256
_ST_FILES = ["modules.json", "sentence_bert_config.json", "*/config.json"]


class BiEncoder(nn.Module):
    """A bi-encoder: `encode(texts)` gives one embedding per text, requests and songs alike.

    Args:
        backbone: a Hugging Face encoder returning `last_hidden_state`.
        tokenizer: its fast tokenizer.
        pooling: one of `POOLING_MODES`.
        max_length: truncation length in tokens.
        normalize: L2-normalize embeddings (dot product becomes cosine).
        lowercase: lowercase texts before tokenizing (sentence-transformers' do_lower_case).
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        pooling: str = "mean",
        max_length: int = DEFAULT_MAX_LENGTH,
        normalize: bool = False,
        lowercase: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in POOLING_MODES:
            raise ValueError(
                f"unknown pooling mode {pooling!r}; valid modes are {', '.join(POOLING_MODES)}"
            )
        if max_length < 2:
            raise ValueError(f"max_length must leave room for the special tokens, got {max_length}")
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = max_length
        self.normalize = normalize
        self.lowercase = lowercase

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        pooling: str | None = None,
        max_length: int | None = None,
        normalize: bool | None = None,
        device: str | torch.device | None = None,
        verify: bool = True,
    ) -> BiEncoder:
        """Load a Hugging Face or sentence-transformers model.

        Settings come from the arguments, else from the directory's sentence-transformers
        files (all-MiniLM-L6-v2: mean pooling, 256 tokens, normalized), else the defaults.

        Args:
            name_or_path: a directory, ``package:<module>`` or a hub id (see `resolve_model_path`).
            pooling: override the pooling mode.
            max_length: override the truncation length.
            normalize: override L2 normalization.
            device: where to put the model; None picks CUDA, then MPS, then CPU.
            verify: check the files against the directory's SHA256SUMS (see `load_backbone`).

        Returns:
            The model in eval mode.
        """
        backbone, tokenizer = load_backbone(name_or_path, verify=verify)
        settings = _st_settings(resolve_model_path(name_or_path))
        if max_length is None:
            max_length = settings["max_seq_length"] or min(
                DEFAULT_MAX_LENGTH, max_input_length(backbone, tokenizer)
            )
        model = cls(
            backbone,
            tokenizer,
            pooling=pooling or settings["pooling"],
            max_length=max_length,
            normalize=settings["normalize"] if normalize is None else normalize,
            lowercase=settings["do_lower_case"],
        )
        return model.to(pick_device() if device is None else device).eval()

    @property
    def dim(self) -> int:
        """The embedding size H."""
        return self.backbone.config.hidden_size

    @property
    def device(self) -> torch.device:
        """Where the parameters live."""
        return next(self.parameters()).device

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, Tensor]:
        """Tokenize a batch, padded to its longest text and truncated at `max_length`.

        Args:
            texts: The batch.
            max_length: Truncation length; None: the model's (training truncates requests and
                descriptor sets at their own lengths).

        Returns:
            input_ids, attention_mask (and token_type_ids when the tokenizer makes them), (B, T).
        """
        return self.tokenizer(
            self._cased(texts),
            padding=True,
            truncation=True,
            max_length=max_length or self.max_length,
            return_tensors="pt",
        )

    def _cased(self, texts: Sequence[str]) -> list[str]:
        # sentence-transformers' do_lower_case: lower-cased before the tokenizer sees them
        return [text.lower() for text in texts] if self.lowercase else list(texts)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Embed a tokenized batch (the training path).

        Shapes:
            input_ids, attention_mask, token_type_ids (B, T) -> (B, H)
        """
        return self._embed(input_ids, attention_mask, token_type_ids, self.normalize)

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        precision: str = "fp32",
        device: str | torch.device | None = None,
        show_progress: bool | None = None,
        normalize: bool | None = None,
        to_cpu: bool = True,
    ) -> Tensor:
        """Embed texts for search: each distinct text once, longest first, in eval mode.

        Args:
            texts: requests or descriptor sets.
            batch_size: texts per forward pass.
            precision: "fp32", "bf16" or "fp16" (fp16 needs a GPU); autocast when not fp32.
            device: move the model there first; None keeps it where it is.
            show_progress: a tqdm bar; None shows one above 1000 texts.
            normalize: override the model's L2 normalization for this call.
            to_cpu: return on CPU (else on the model's device).

        Returns:
            float32 embeddings, row i for texts[i] (equal texts get equal rows).

        Shapes:
            N texts -> (N, H); no texts -> (0, H).
        """
        check_texts(texts)
        if device is not None:
            self.to(device)
        normalize = self.normalize if normalize is None else normalize
        out_device = torch.device("cpu") if to_cpu else self.device
        if len(texts) == 0:
            return torch.empty(0, self.dim, device=out_device)
        distinct = list(dict.fromkeys(texts))  # keeps first-seen order
        row_of = {text: i for i, text in enumerate(distinct)}

        def encode_batch(batch: list[str]) -> Tensor:
            features = {k: v.to(self.device) for k, v in self.tokenize(batch).items()}
            return self._embed(**features, normalize=normalize).float()

        was_training = self.training
        self.eval()  # no dropout at search time, even when called mid-training
        try:
            with torch.inference_mode(), autocast_context(self.device, precision):
                embeddings = run_length_sorted(
                    distinct,
                    token_counts(self.tokenizer, self._cased(distinct), max_length=self.max_length),
                    encode_batch,
                    batch_size=batch_size,
                    show_progress=show_progress,
                    desc="encode",
                )
        finally:
            self.train(was_training)
        rows = torch.tensor([row_of[text] for text in texts], device=embeddings.device)
        return embeddings[rows].to(out_device)

    def save(self, path: str | Path) -> Path:
        """Save weights (safetensors), tokenizer and the sentence-transformers layout.

        `SentenceTransformer(path)` loads the result with the same embeddings, and so does
        `BiEncoder.from_pretrained(path)`. The directory is replaced atomically.

        Returns:
            `path`.
        """
        with atomic_directory(path) as tmp:
            self.backbone.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            write_st_layout(
                tmp,
                hidden_size=self.dim,
                pooling=self.pooling,
                max_seq_length=self.max_length,
                normalize=self.normalize,
                similarity_fn_name="cosine" if self.normalize else "dot",
                do_lower_case=self.lowercase,
            )
        return Path(path)

    def _embed(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        normalize: bool = False,
    ) -> Tensor:
        # models without segment embeddings (RoBERTa-like tokenizers) never pass token_type_ids
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **extra)
        embeddings = pool(hidden.last_hidden_state, attention_mask, self.pooling)  # (B, H)
        return F.normalize(embeddings, p=2, dim=-1) if normalize else embeddings


def _st_settings(path: str) -> dict[str, Any]:
    """sentence-transformers settings of a local directory or, best effort, of a hub repo."""
    if os.path.isdir(path):
        return read_st_settings(path)
    from huggingface_hub import snapshot_download

    # transformers does not download the sentence-transformers files: fetch just those
    for local_only in (True, False):
        if not local_only and hub_offline():
            break
        try:
            snapshot = snapshot_download(
                path, allow_patterns=_ST_FILES, local_files_only=local_only
            )
        except (OSError, ValueError):  # not cached / not reachable / not a repo id: no settings
            continue
        if os.path.isfile(os.path.join(snapshot, "modules.json")):
            return read_st_settings(snapshot)
    return dict(ST_DEFAULTS)
