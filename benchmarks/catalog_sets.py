"""The descriptor sets of a benchmark catalog: the real ones, topped up with random sub-sets.

One sampler for every benchmark that needs a catalog bigger than the data's own sets
(``real_catalog.py`` for search, ``serve_load.py`` for serving), so that they measure the same
kind of catalog. Steps, with one ``random.Random(seed)``:

1. the distinct non-empty descriptor sets (distinct by their text, descriptors joined with
   ``", "`` as the index stores them), shuffled, the first ``size`` kept;
2. while fewer than ``size``: a random set of three or more descriptors gives the sub-set of
   ``max(2, len // 2)`` of them, drawn at random in their order, kept when its text is new.

Fewer than ``size`` come back when 20 * ``size`` draws find no more new sub-sets (the caller
decides whether that is an error). ``real_catalog.py`` caches embeddings of these sets, so a
change here changes what its cache holds: rebuild it (a new ``--cache-dir``).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from melscribe_torch.data.descriptors import descriptor_set_text  # noqa: E402


def sample_descriptor_sets(
    descriptor_lists: Iterable[Sequence[str]], size: int, seed: int
) -> list[tuple[str, ...]]:
    """At most ``size`` distinct descriptor sets: real ones first, then sub-sets (module docstring)."""
    rng = random.Random(seed)
    sets = list(dict.fromkeys(tuple(d) for d in descriptor_lists if d))
    rng.shuffle(sets)
    by_text: dict[str, tuple[str, ...]] = {}
    for s in sets:
        by_text.setdefault(descriptor_set_text(s), s)
    chosen = list(by_text.values())[:size]
    seen = {descriptor_set_text(s) for s in chosen}
    splittable = [s for s in sets if len(s) >= 3]  # a sub-set of a 2-set is the set or too small
    tries = 0
    while len(chosen) < size and splittable and tries < 20 * size:
        tries += 1
        s = rng.choice(splittable)
        keep = sorted(rng.sample(range(len(s)), max(2, len(s) // 2)))
        subset = tuple(s[i] for i in keep)
        text = descriptor_set_text(subset)
        if text not in seen:
            seen.add(text)
            chosen.append(subset)
    return chosen
