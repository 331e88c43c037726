"""Shared code for the recommend tests: a keyword encoder and catalog writers."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import torch

KEYWORDS = (
    "tropical",
    "steel",
    "drums",
    "piano",
    "sad",
    "rock",
    "guitar",
    "calm",
    "jazz",
    "upbeat",
)


class KeywordEncoder:
    """One-hot "keyword" embeddings: dimension i counts KEYWORDS[i] in the text (+1 bias dim).

    Rankings by cosine can be worked out by hand, and every encoded text is recorded.
    """

    dim = len(KEYWORDS) + 1

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts, *, batch_size: int = 64, precision: str = "fp32") -> torch.Tensor:
        self.encoded += list(texts)
        out = torch.zeros(len(texts), self.dim)
        for row, text in enumerate(texts):
            words = re.findall(r"[a-z]+", text.lower())
            for i, keyword in enumerate(KEYWORDS):
                out[row, i] = words.count(keyword)
            out[row, -1] = 0.1  # keeps keyword-free texts off the zero vector
        return out


FAKE_MODEL = {"name_or_path": "keyword", "path": "keyword", "weights_sha256": "0" * 64}

SONGS = [
    {
        "id": "s1",
        "title": "Island",
        "artist": "Band A",
        "descriptors": "['tropical', 'steel drums', 'upbeat']",
    },
    {"id": "s2", "title": "Rain", "artist": "Band B", "descriptors": "['sad', 'piano', 'calm']"},
    {"id": "s3", "title": "Loud", "artist": "", "descriptors": "rock, guitar, upbeat"},
    {
        "id": "s4",
        "title": "Island (live)",
        "artist": "Band A",
        "descriptors": "['tropical', 'steel drums', 'upbeat']",
    },
    {"id": "s5", "title": "Smoke", "artist": "Band C", "descriptors": "['jazz', 'piano']"},
]


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
