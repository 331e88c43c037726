"""Shared fixtures: a tiny randomly initialised BERT and its tokenizer, built offline in seconds."""

from __future__ import annotations

import copy
import os
import string
from pathlib import Path

import pytest
import torch

# The real data directory used by integration tests; `.ci/run` points MELSCRIBE_DATA at it.
REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("MELSCRIBE_DATA", REPO_ROOT.parent / "shared" / "data"))

MUSIC_WORDS = ["the", "a", "an", "and", "with", "of", "in", "for", "this", "song", "track", "music", "features", "is", "are", "by", "on", "to", "me", "rock", "pop", "jazz", "piano", "guitar", "drums", "bass", "vocal", "vocals", "female", "male", "singer", "fast", "slow", "tempo", "happy", "sad", "calm", "energetic", "upbeat", "tropical", "steel", "steeldrum", "joyful", "amateur", "recording", "low", "quality", "melody", "strings", "soft", "loud", "electronic", "acoustic", "beat", "i", "want", "something", "like", "play"]


def write_tiny_vocab(path: Path) -> Path:
    """Write a WordPiece vocabulary that covers any lowercase ASCII text."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = ["##" + c for c in string.ascii_lowercase + string.digits]
    # dict.fromkeys: one-letter words ("a", "i") are also characters; ids must stay unique.
    vocab = list(dict.fromkeys(specials + chars + pieces + sorted(set(MUSIC_WORDS))))
    path.write_text("\n".join(vocab) + "\n")
    return path


def build_tiny_tokenizer(directory: Path):
    """A BERT-style WordPiece fast tokenizer over the tiny vocabulary."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = write_tiny_vocab(directory / "vocab.txt").read_text().split()
    vocab = {word: i for i, word in enumerate(words)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )


def build_tiny_model_dir(directory: Path, seed: int = 0) -> Path:
    """Save a tiny random BERT (hidden 32, 2 layers) and a fast tokenizer into `directory`."""
    from transformers import BertConfig, BertModel

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(directory)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A directory holding a tiny random BERT + tokenizer in Hugging Face format (read-only: copy to change)."""
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def _teacher(tiny_model_dir):
    from melscribe_torch.models import CrossEncoder

    torch.manual_seed(0)  # the new relevance head draws from it
    return CrossEncoder.from_pretrained(str(tiny_model_dir), device="cpu")


@pytest.fixture
def teacher(_teacher):
    """A cross-encoder on the tiny model with a new head; each test gets its own copy."""
    return copy.deepcopy(_teacher)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """A tiny data directory in the real layout (training_fixtures.write_tiny_data)."""
    from training_fixtures import write_tiny_data

    return write_tiny_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real data directory; tests that need it are skipped, with the reason, when it is absent."""
    if not (DATA_ROOT / "LP-MusicCaps-MC" / "test.csv").exists():
        pytest.skip(f"real data not found under {DATA_ROOT} (set MELSCRIBE_DATA to the data directory)")
    return DATA_ROOT


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread: tiny matmuls gain nothing from more, and on a busy machine
    oversubscribed OpenMP threads make these tests tens of times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
