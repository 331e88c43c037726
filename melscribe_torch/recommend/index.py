"""A song index on disk: embeddings of each distinct descriptor set, the song table, a manifest.

Layout of an index directory (``<g>`` is a generation token, new for every write)::

    manifest.json                     the commit point: model, sizes, files with sizes and sha256
    songs-<g>.jsonl                   one song per line: id, title, artist, descriptors, set (row in sets), link (when known)
    sets-<g>.json                     distinct descriptor-set texts, a JSON list; row i <-> embedding row i
    set_embeddings-<g>.npy            (num_sets, dim) float16/float32, memory-mapped at load
    descriptors-<g>.json              distinct single descriptors (for explanations), a JSON list
    descriptor_embeddings-<g>.npy     (num_descriptors, dim)

Many songs share a descriptor set, so each distinct set text is encoded once. The set
embeddings are stored the way search reads them: L2-normalised for score ``cos`` (manifest
``"normalized": true``), so a score is a plain dot product, and in the index dtype (float16 by
default: half the bytes to stream, and CPUs have a fast float16 matrix-vector kernel), so a
request neither normalises nor converts the matrix (see ``dense_search``).

Format 1 indexes (no ``normalized`` field) load too: rows found not to be unit length are
normalised in memory on load (a warning says to re-index). A format newer than this
package reads is refused.

Writes never touch the files the current manifest names (``index_write``, which builds and
appends); this module reads: the format, the manifest's checks, loading.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .catalog import Song
from .index_folder import member

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 2
# Rows checked for unit length when a format 1 index is loaded.
NORM_CHECK_ROWS = 4096
DTYPES = ("float16", "float32")
SCORES = ("cos", "dot")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".onnx")
_ROLES = ("songs", "sets", "set_embeddings", "descriptors", "descriptor_embeddings")


class IndexCorruptError(RuntimeError):
    """An index file is missing, truncated or does not match its checksum."""


class IndexMismatchError(ValueError):
    """The index was built with another model or embedding size than the one given."""


class Encoder(Protocol):
    """What indexing needs from a model (``BiEncoder`` fits)."""

    def encode(self, texts: Sequence[str], *, batch_size: int, precision: str) -> torch.Tensor:
        """(len(texts), H) float32 embeddings."""
        ...


@dataclass
class SongIndex:
    """A loaded index.

    Attributes:
        directory: Where it lives.
        manifest: The parsed ``manifest.json``.
        songs: Songs in index order.
        song_sets: (num_songs,) row of each song's descriptor set.
        set_texts: Descriptor-set texts, row i for embedding row i.
        set_emb: (num_sets, dim) memory-mapped embeddings.
        descriptors: Distinct descriptors, row i for ``descriptor_emb`` row i.
        descriptor_emb: (num_descriptors, dim) memory-mapped embeddings.
    """

    directory: Path
    manifest: dict
    songs: list[Song]
    song_sets: np.ndarray
    set_texts: list[str]
    set_emb: np.ndarray
    descriptors: list[str]
    descriptor_emb: np.ndarray
    _songs_of_set: list[list[int]] | None = field(default=None, repr=False)

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def score(self) -> str:
        return str(self.manifest["score"])

    def songs_of_set(self, set_row: int) -> list[int]:
        """Song rows whose descriptor set is ``set_row``, in catalog order."""
        if self._songs_of_set is None:
            groups: list[list[int]] = [[] for _ in self.set_texts]
            for song_row, s in enumerate(self.song_sets.tolist()):
                groups[s].append(song_row)
            self._songs_of_set = groups
        return self._songs_of_set[set_row]

    def descriptor_rows(self) -> dict[str, int]:
        return {d: i for i, d in enumerate(self.descriptors)}


def model_fingerprint(name_or_path: str) -> dict:
    """Where a model lives and a sha256 over its weight files (names and bytes), for the manifest.

    Returns:
        ``{"name_or_path", "path", "weights_sha256"}``; the hash is None when the model is not a
        local directory (a hub id), so only the path can be compared then.
    """
    from ..models import resolve_model_path

    path = resolve_model_path(name_or_path)
    if not os.path.isdir(path):
        return {"name_or_path": name_or_path, "path": path, "weights_sha256": None}
    digest = hashlib.sha256()
    weights = sorted(
        p for p in Path(path).rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES
    )
    for p in weights:
        digest.update(str(p.relative_to(path)).encode())
        digest.update(_file_sha256(p).encode())
    return {
        "name_or_path": name_or_path,
        "path": str(Path(path).resolve()),
        "weights_sha256": digest.hexdigest() if weights else None,
    }


def check_compatible(manifest: dict, model: dict, dim: int | None) -> None:
    """Raise `IndexMismatchError` when ``model`` (a `model_fingerprint`) or ``dim`` differ from the index's."""
    built = manifest["model"]
    if dim is not None and int(dim) != int(manifest["dim"]):
        raise IndexMismatchError(
            f"the index holds {manifest['dim']}-dimensional embeddings from model {built['name_or_path']!r}, "
            f"but the model given makes {dim}-dimensional ones; use the index's model or rebuild the index"
        )
    same = (
        built.get("weights_sha256") == model.get("weights_sha256")
        if built.get("weights_sha256") and model.get("weights_sha256")
        else built.get("path") == model.get("path")
    )
    if not same:
        raise IndexMismatchError(
            f"the index was built with model {built['name_or_path']!r} (weights sha256 "
            f"{str(built.get('weights_sha256'))[:12]}), not with {model['name_or_path']!r} (weights sha256 "
            f"{str(model.get('weights_sha256'))[:12]}): its embeddings are not comparable; "
            "query with the index's model (omit --model) or rebuild the index"
        )


def load_index(directory: str | Path, verify: bool = True) -> SongIndex:
    """Load an index; embeddings stay memory-mapped.

    Args:
        directory: The index directory.
        verify: Also check each file's sha256 (sizes and shapes are always checked).

    Raises:
        FileNotFoundError: no manifest in ``directory``.
        IndexCorruptError: a file is missing, truncated, or fails its checksum.
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{directory} is not a song index: no {MANIFEST} (build one with `melscribe-recommend index`)"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        paths = {role: member(directory, files[role]["name"], manifest_path) for role in _ROLES}
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise IndexCorruptError(
            f"{manifest_path} is unreadable or incomplete ({err!r}); rebuild the index"
        ) from None
    version = manifest.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise IndexCorruptError(
            f"{manifest_path}: index format {version!r}, this package reads formats 1 to {FORMAT_VERSION}; "
            "upgrade melscribe-torch or re-index"
        )
    for role, path in paths.items():
        entry = files[role]
        if not path.is_file():
            raise IndexCorruptError(f"index file missing: {path}; rebuild the index")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise IndexCorruptError(
                f"index file {path} has {size} bytes, the manifest says {entry['bytes']} (truncated or changed); "
                "rebuild the index"
            )
        if verify and _file_sha256(path) != entry["sha256"]:
            raise IndexCorruptError(
                f"index file {path} fails its sha256 checksum (corrupt or changed); rebuild the index"
            )
    try:
        set_emb = np.load(paths["set_embeddings"], mmap_mode="c")
        descriptor_emb = np.load(paths["descriptor_embeddings"], mmap_mode="c")
        set_texts = json.loads(paths["sets"].read_text(encoding="utf-8"))
        descriptors = json.loads(paths["descriptors"].read_text(encoding="utf-8"))
        songs, song_sets = [], []
        for line in paths["songs"].read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            songs.append(
                Song(
                    row["id"],
                    tuple(row["descriptors"]),
                    row["title"],
                    row["artist"],
                    row.get("link"),
                )
            )
            song_sets.append(row["set"])
    except (ValueError, KeyError, OSError) as err:
        raise IndexCorruptError(
            f"index {directory} cannot be read ({err!r}); rebuild the index"
        ) from None
    expected = {
        "set_embeddings": (set_emb, manifest["num_descriptor_sets"]),
        "descriptor_embeddings": (descriptor_emb, manifest["num_descriptors"]),
    }
    for role, (emb, rows) in expected.items():
        if emb.shape != (rows, manifest["dim"]) or str(emb.dtype) != manifest["dtype"]:
            raise IndexCorruptError(
                f"{paths[role]}: shape {emb.shape} {emb.dtype}, the manifest says ({rows}, {manifest['dim']}) "
                f"{manifest['dtype']}; rebuild the index"
            )
    if (
        len(songs) != manifest["num_songs"]
        or len(set_texts) != manifest["num_descriptor_sets"]
        or len(descriptors) != manifest["num_descriptors"]
    ):
        raise IndexCorruptError(
            f"index {directory}: song/set/descriptor counts differ from the manifest; rebuild the index"
        )
    if version == 1:
        set_emb = _upgrade_format_1(manifest, set_emb, directory)
    return SongIndex(
        directory,
        manifest,
        songs,
        np.asarray(song_sets, dtype=np.int64),
        set_texts,
        set_emb,
        descriptors,
        descriptor_emb,
    )


def _upgrade_format_1(manifest: dict, set_emb: np.ndarray, directory: Path) -> np.ndarray:
    """Format 1 did not record normalisation: check it, and normalise in memory when needed."""
    manifest["normalized"] = manifest["score"] == "cos"
    if not manifest["normalized"]:
        return set_emb
    head = set_emb[:NORM_CHECK_ROWS].astype(np.float32)
    if np.allclose(np.linalg.norm(head, axis=1), 1.0, atol=1e-2):
        return set_emb
    log.warning(
        "index %s (format 1) holds set embeddings that are not unit length: normalising them in memory "
        "on every load; re-index to store them normalised",
        directory,
    )
    rows = set_emb.astype(np.float32)
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    return rows.astype(set_emb.dtype)


def file_entry(path: Path) -> dict:
    """A manifest's record of one file: name, size and sha256."""
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": _file_sha256(path)}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def __getattr__(name: str):
    # Writing moved to index_write, which imports this module: resolved on first use, so
    # ``from melscribe_torch.recommend.index import build_index`` keeps working.
    if name == "build_index":
        from .index_write import build_index

        return build_index
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
