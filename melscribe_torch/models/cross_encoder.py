"""A cross-encoder: (request, descriptor set) pairs read jointly, one relevance logit per pair.

The model is a Hugging Face *ForSequenceClassification with num_labels=1, and `save` writes
it as one: `config.json` + `model.safetensors` + the tokenizer, plus the settings that make
`sentence_transformers.CrossEncoder(dir)` return the same raw logits (identity activation,
the same truncation length). Any tool that reads a sequence-classification checkpoint
(sentence-transformers, gpl's `--cross_encoder`, a transformers pipeline) reads ours, and
sentence-transformers' cross-encoders load here with their own head.

A plain encoder directory gets the architecture's own classification head, new, initialised
from the caller's torch seed. Directories saved by earlier versions of this project (an
encoder + `cross_encoder_head.safetensors`, a Linear(H, 1) on the first token) still load
and save in that layout, which no other tool reads: retrain such a teacher to share it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from transformers import (
    AutoModelForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from melscribe_torch.io import atomic_write_json

from .backbone import load_backbone, max_input_length, resolve_model_path
from .device import pick_device
from .inference import (
    atomic_directory,
    autocast_context,
    check_texts,
    run_length_sorted,
    token_counts,
)

HEAD_FILE = "cross_encoder_head.safetensors"  # the earlier layout's head
CONFIG_FILE = "cross_encoder_config.json"
ST_CONFIG_FILE = "config_sentence_transformers.json"
IDENTITY = "torch.nn.modules.linear.Identity"
# A pair holds a request and a whole descriptor set, so it gets more room than a single text.
DEFAULT_MAX_LENGTH = 512


class CrossEncoder(nn.Module):
    """Score (query, document) pairs with one forward pass per pair.

    Args:
        backbone: a *ForSequenceClassification model with num_labels=1 (used as is), or a
            Hugging Face encoder, which gets its architecture's classification head, new.
        tokenizer: its fast tokenizer.
        max_length: truncation length of a pair in tokens.
        dropout: dropout before a new head (training only; `classifier_dropout` in its config).
        first_token_head: the earlier layout: keep the encoder and put a Linear(H, 1) on its
            first token (only to read directories saved that way).
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int = DEFAULT_MAX_LENGTH,
        dropout: float = 0.1,
        first_token_head: bool = False,
    ) -> None:
        super().__init__()
        is_classifier = type(backbone).__name__.endswith("ForSequenceClassification")
        if not is_classifier and not first_token_head:
            backbone, is_classifier = with_relevance_head(backbone, dropout), True
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.dropout_p = dropout
        self.has_own_head = is_classifier
        if self.has_own_head:
            if backbone.config.num_labels != 1:
                raise ValueError(
                    f"a sequence-classification checkpoint must have num_labels=1 (one relevance "
                    f"logit), this one has {backbone.config.num_labels}"
                )
            self.dropout, self.head = None, None
        else:
            config = backbone.config
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(config.hidden_size, 1)
            nn.init.normal_(self.head.weight, std=getattr(config, "initializer_range", 0.02))
            nn.init.zeros_(self.head.bias)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        max_length: int | None = None,
        dropout: float | None = None,
        device: str | torch.device | None = None,
        verify: bool = True,
    ) -> CrossEncoder:
        """Load one of the checkpoint kinds in the module docstring.

        Args:
            name_or_path: a directory, ``package:<module>`` or a hub id.
            max_length: override the pair truncation length.
            dropout: override the head dropout (new heads default to 0.1).
            device: where to put the model; None picks CUDA, then MPS, then CPU.
            verify: check the files against the directory's SHA256SUMS (see `load_backbone`).

        Returns:
            The model in eval mode.
        """
        backbone, tokenizer = load_backbone(name_or_path, kind="auto", verify=verify)
        path = Path(resolve_model_path(name_or_path))
        saved = (
            json.loads((path / CONFIG_FILE).read_text()) if (path / CONFIG_FILE).is_file() else {}
        )
        if max_length is None:
            max_length = saved.get("max_length") or min(
                DEFAULT_MAX_LENGTH, max_input_length(backbone, tokenizer)
            )
        dropout = saved.get("dropout", 0.1) if dropout is None else dropout
        first_token_head = (path / HEAD_FILE).is_file()
        model = cls(
            backbone,
            tokenizer,
            max_length=max_length,
            dropout=dropout,
            first_token_head=first_token_head,
        )
        if first_token_head:
            if model.head is None:
                raise ValueError(
                    f"{path}: holds both a sequence-classification model and {HEAD_FILE}; "
                    "keep one of the two"
                )
            model.head.load_state_dict(load_file(path / HEAD_FILE))
        return model.to(pick_device() if device is None else device).eval()

    @property
    def device(self) -> torch.device:
        """Where the parameters live."""
        return next(self.parameters()).device

    def tokenize_pairs(self, queries: Sequence[str], documents: Sequence[str]) -> dict[str, Tensor]:
        """Tokenize pairs as `[CLS] query [SEP] document [SEP]`, padded to the longest pair.

        Truncation takes tokens from the longer side first, so a short request survives.

        Returns:
            input_ids, attention_mask (and token_type_ids when the tokenizer makes them), (B, T).
        """
        if len(queries) != len(documents):
            raise ValueError(
                f"{len(queries)} queries but {len(documents)} documents; pass one per pair"
            )
        return self.tokenizer(
            list(queries),
            list(documents),
            padding=True,
            truncation="longest_first",
            max_length=self.max_length,
            return_tensors="pt",
        )

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None
    ) -> Tensor:
        """Relevance logits of a tokenized batch of pairs.

        Shapes:
            input_ids, attention_mask, token_type_ids (B, T) -> (B,)
        """
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        outputs = self.backbone(input_ids=input_ids, attention_mask=attention_mask, **extra)
        if self.head is None:
            return outputs.logits.squeeze(-1)
        first_token = outputs.last_hidden_state[:, 0]  # (B, H)
        return self.head(self.dropout(first_token)).squeeze(-1)

    def predict(
        self,
        pairs: Sequence[tuple[str, str]],
        *,
        batch_size: int = 64,
        precision: str = "fp32",
        device: str | torch.device | None = None,
        show_progress: bool | None = None,
    ) -> Tensor:
        """Score (query, document) pairs, longest first, in eval mode.

        Args:
            pairs: (request, descriptor set) tuples.
            batch_size: pairs per forward pass.
            precision: "fp32", "bf16" or "fp16" (fp16 needs a GPU).
            device: move the model there first; None keeps it where it is.
            show_progress: a tqdm bar; None shows one above 1000 pairs.

        Returns:
            float32 logits on CPU, one per pair, in input order.

        Shapes:
            N pairs -> (N,)
        """
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"pairs[{i}] must be a (query, document) tuple, got {pair!r:.80}")
            check_texts(pair, what=f"pairs[{i}]")
        if device is not None:
            self.to(device)
        if len(pairs) == 0:
            return torch.empty(0)

        def score_batch(batch: list[tuple[str, str]]) -> Tensor:
            queries, documents = zip(*batch)
            features = self.tokenize_pairs(queries, documents)
            return self(**{k: v.to(self.device) for k, v in features.items()}).float()

        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode(), autocast_context(self.device, precision):
                queries, documents = zip(*pairs)
                scores = run_length_sorted(
                    list(pairs),
                    token_counts(self.tokenizer, queries, documents, max_length=self.max_length),
                    score_batch,
                    batch_size=batch_size,
                    show_progress=show_progress,
                    desc="predict",
                )
        finally:
            self.train(was_training)
        return scores.cpu().clone()  # clone: a normal tensor, usable outside inference mode

    def save(self, path: str | Path) -> Path:
        """Save the model, its tokenizer and settings atomically (see the module docstring).

        Returns:
            `path`.
        """
        with atomic_directory(path) as tmp:
            if self.head is None:
                # our scores are raw logits, not sigmoids: sentence-transformers 3 reads the
                # first key, >= 4 the second (and config_sentence_transformers.json below)
                self.backbone.config.sbert_ce_default_activation_function = IDENTITY
                self.backbone.config.sentence_transformers = {"activation_fn": IDENTITY}
            self.backbone.save_pretrained(tmp)
            # sentence-transformers truncates pairs at the tokenizer's model_max_length
            tokenizer_limit = self.tokenizer.model_max_length
            self.tokenizer.model_max_length = self.max_length
            try:
                self.tokenizer.save_pretrained(tmp)
            finally:
                self.tokenizer.model_max_length = tokenizer_limit
            if self.head is None:
                atomic_write_json(
                    tmp / ST_CONFIG_FILE, {"model_type": "CrossEncoder", "activation_fn": IDENTITY}
                )
            else:
                head_state = {
                    k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()
                }
                save_file(head_state, os.fspath(tmp / HEAD_FILE))
            atomic_write_json(
                tmp / CONFIG_FILE, {"max_length": self.max_length, "dropout": self.dropout_p}
            )
        return Path(path)


def with_relevance_head(encoder: PreTrainedModel, dropout: float) -> PreTrainedModel:
    """The encoder inside its architecture's *ForSequenceClassification, with a new 1-logit head.

    The head (BERT: pooler + dropout + Linear; MPNet/RoBERTa: dense + tanh + Linear) draws its
    weights from the caller's torch seed; the encoder's weights are copied unchanged.
    """
    config = copy.deepcopy(encoder.config)
    config.num_labels = 1
    config.classifier_dropout = dropout
    config.architectures = None
    model = AutoModelForSequenceClassification.from_config(config)
    missing, _ = model.base_model.load_state_dict(encoder.state_dict(), strict=False)
    if missing:
        raise ValueError(
            f"{type(encoder).__name__} does not fit {type(model).__name__}: "
            f"missing weights {missing[:3]}"
        )
    return model.to(encoder.dtype).eval()
