"""Writing a song index (the layout is in ``index``): build one from a catalog, or append songs.

Writes never touch the files the current manifest names: new files get a new generation
token and ``manifest.json`` is replaced last (``os.replace``), so a crash at any point leaves
the previous index loadable. Files the replaced manifest listed are removed after the
commit; nothing else in the folder is (``index_folder``). One writer at a time (``locking``).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..conf import read_config
from ..data.descriptors import descriptor_set_text
from ..io import atomic_write_bytes, atomic_write_json
from ..locking import exclusive_lock
from . import ann_store
from .catalog import Song
from .index import (
    DTYPES,
    FORMAT_VERSION,
    MANIFEST,
    SCORES,
    Encoder,
    SongIndex,
    file_entry,
    check_compatible,
    load_index,
)
from .index_folder import abandon_write, begin_write, end_write, files_of_manifest, member

log = logging.getLogger(__name__)

# Texts encoded per call, so that a multi-million-set catalog never holds all its float32
# embeddings in memory at once.
ENCODE_BLOCK = 65536
# How a catalog is encoded and stored when a caller says nothing: recommend.yaml's index block,
# which melscribe-recommend index reads too.
INDEX_DEFAULTS = read_config("recommend")["index"]


def build_index(songs: Sequence[Song], encoder: Encoder, out_dir: str | Path, model: dict, **kwargs) -> SongIndex:
    """Encode a catalog into an index directory (or append songs to the index there).

    Holds the folder's lock throughout (a second writer gets a one-line `LockError`); see
    `_write_index` for the arguments.
    """
    how_to_fix = "wait for the other index command to finish, or write to another --out"
    with exclusive_lock(out_dir, "index folder", how_to_fix):
        return _write_index(songs, encoder, out_dir, model, **kwargs)


def _write_index(
    songs: Sequence[Song],
    encoder: Encoder,
    out_dir: str | Path,
    model: dict,
    *,
    dim: int,
    dtype: str = INDEX_DEFAULTS["dtype"],
    score: str = INDEX_DEFAULTS["score"],
    append: bool = False,
    batch_size: int = INDEX_DEFAULTS["batch_size"],
    precision: str = INDEX_DEFAULTS["precision"],
    ann: str | None = None,
) -> SongIndex:
    """Write the index (the caller holds the folder's lock).

    Args:
        songs: The catalog (or, with ``append``, the songs to add).
        encoder: The model; only texts not yet in the index are encoded.
        out_dir: The index directory.
        model: `model_fingerprint` of ``encoder``'s model, stored in the manifest.
        dim: The embedding size H.
        dtype: "float16" (half the disk and memory, ranking nearly unchanged) or "float32".
        score: "cos" (stored L2-normalised) or "dot".
        append: Add to the existing index in ``out_dir`` (same model, dtype and score).
        ann: "ivf": also store a FAISS IVF index of the sets (`ann_store`); an index that has
            one keeps one when appended to.

    Returns:
        The new index, loaded.
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; valid: {', '.join(SCORES)}")
    if ann is not None and ann not in ann_store.KINDS:
        raise ValueError(f"unknown ann index {ann!r}; valid: {', '.join(ann_store.KINDS)}")
    out_dir = Path(out_dir)
    previous = files_of_manifest(out_dir / MANIFEST)  # the only files this write may remove
    old: SongIndex | None = None
    if append:
        if not (out_dir / MANIFEST).is_file():
            raise FileNotFoundError(
                f"--append: no index to append to in {out_dir} (no {MANIFEST}); build it first"
            )
        old = load_index(out_dir)
        check_compatible(old.manifest, model, dim)
        if (old.manifest["dtype"], old.score) != (dtype, score):
            log.info(
                "appending: keeping the index's dtype %s and score %s",
                old.manifest["dtype"],
                old.score,
            )
            dtype, score = old.manifest["dtype"], old.score
        known = {s.song_id for s in old.songs}
        clash = sorted(s.song_id for s in songs if s.song_id in known)
        if clash:
            raise ValueError(
                f"{len(clash)} song id(s) to append are already in the index {out_dir}: "
                f"{', '.join(clash[:10])}{' ...' if len(clash) > 10 else ''}"
            )
    all_songs = (old.songs if old else []) + list(songs)
    set_texts = list(old.set_texts) if old else []
    set_row = {t: i for i, t in enumerate(set_texts)}
    song_sets = []
    for song in all_songs:
        text = descriptor_set_text(song.descriptors)
        if text not in set_row:
            set_row[text] = len(set_texts)
            set_texts.append(text)
        song_sets.append(set_row[text])
    descriptors = list(old.descriptors) if old else []
    descriptor_row = {d: i for i, d in enumerate(descriptors)}
    for song in all_songs:
        for d in song.descriptors:
            if d not in descriptor_row:
                descriptor_row[d] = len(descriptors)
                descriptors.append(d)

    out_dir.mkdir(parents=True, exist_ok=True)
    gen = uuid.uuid4().hex[:12]
    names = {
        "songs": f"songs-{gen}.jsonl",
        "sets": f"sets-{gen}.json",
        "set_embeddings": f"set_embeddings-{gen}.npy",
        "descriptors": f"descriptors-{gen}.json",
        "descriptor_embeddings": f"descriptor_embeddings-{gen}.npy",
    }
    old_ann = None
    if old is not None and ann_store.ROLE in old.manifest["files"]:
        old_ann = member(out_dir, old.manifest["files"][ann_store.ROLE]["name"], out_dir / MANIFEST)
    if ann or old_ann:
        names[ann_store.ROLE] = f"ann_ivf-{gen}.faiss"
    encode = {
        "encoder": encoder,
        "dim": dim,
        "dtype": dtype,
        "normalize": score == "cos",
        "batch_size": batch_size,
        "precision": precision,
    }
    begin_write(out_dir, previous, names.values())
    written: list[Path] = []
    try:
        lines = [
            json.dumps(
                {
                    "id": s.song_id,
                    "title": s.title,
                    "artist": s.artist,
                    "descriptors": list(s.descriptors),
                    "set": r,
                    **({"link": s.link} if s.link else {}),
                },
                ensure_ascii=False,
            )
            for s, r in zip(all_songs, song_sets)
        ]
        written.append(
            atomic_write_bytes(out_dir / names["songs"], ("\n".join(lines) + "\n").encode())
        )
        written.append(
            atomic_write_bytes(
                out_dir / names["sets"], json.dumps(set_texts, ensure_ascii=False).encode()
            )
        )
        written.append(
            atomic_write_bytes(
                out_dir / names["descriptors"], json.dumps(descriptors, ensure_ascii=False).encode()
            )
        )
        written.append(out_dir / names["set_embeddings"])
        _write_embeddings(written[-1], set_texts, old.set_emb if old else None, **encode)
        if ann_store.ROLE in names:
            set_emb = np.load(written[-1], mmap_mode="r")
            written.append(out_dir / names[ann_store.ROLE])
            ann_settings = ann_store.write_ivf(written[-1], set_emb, old_ann)
            del set_emb
        written.append(out_dir / names["descriptor_embeddings"])
        _write_embeddings(written[-1], descriptors, old.descriptor_emb if old else None, **encode)
        manifest = {
            "format_version": FORMAT_VERSION,
            "created": datetime.now().astimezone().isoformat(timespec="seconds"),
            "package_version": __version__,
            "model": model,
            "dim": int(dim),
            "score": score,
            "normalized": score == "cos",
            "dtype": dtype,
            "num_songs": len(all_songs),
            "num_descriptor_sets": len(set_texts),
            "num_descriptors": len(descriptors),
            "files": {role: file_entry(out_dir / name) for role, name in names.items()},
        }
        if ann_store.ROLE in names:
            manifest["ann"] = ann_settings
        if old:
            manifest["appended_from"] = old.manifest["created"]
        atomic_write_json(out_dir / MANIFEST, manifest)  # the commit point
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        abandon_write(out_dir)
        raise
    end_write(out_dir, previous, set(names.values()), MANIFEST)
    log.info(
        "index %s: %d songs, %d descriptor sets, %d descriptors",
        out_dir,
        len(all_songs),
        len(set_texts),
        len(descriptors),
    )
    return load_index(out_dir, verify=False)


def _write_embeddings(
    path: Path,
    texts: list[str],
    old: np.ndarray | None,
    *,
    encoder: Encoder,
    dim: int,
    dtype: str,
    normalize: bool,
    batch_size: int,
    precision: str,
) -> None:
    """Write (len(texts), dim) embeddings: rows of ``old`` copied, the rest encoded block by block."""
    start = 0 if old is None else old.shape[0]
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=(len(texts), dim))
    for i in range(0, start, ENCODE_BLOCK):
        stop = min(i + ENCODE_BLOCK, start)
        out[i:stop] = old[i:stop]
    for i in range(start, len(texts), ENCODE_BLOCK):
        block = texts[i : i + ENCODE_BLOCK]
        emb = encoder.encode(block, batch_size=batch_size, precision=precision).float().cpu()
        if emb.shape != (len(block), dim):
            raise ValueError(
                f"the encoder returned embeddings of shape {tuple(emb.shape)}, expected ({len(block)}, {dim})"
            )
        if normalize:
            emb = torch.nn.functional.normalize(emb, p=2, dim=-1)
        out[i : i + len(block)] = emb.numpy().astype(dtype)
    out.flush()
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
    del out
