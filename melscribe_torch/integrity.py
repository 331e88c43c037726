"""Checksums beside what the project writes, checked when it is read back.

Two forms, both in ``sha256sum`` format (``<hex>  <name>`` lines):

- ``<file>.sha256`` beside one file (the training checkpoint). While a new version is
  being moved into place the sidecar lists both the old and the new digest, so a kill at
  any moment leaves a file that one of the listed digests matches.
- ``SHA256SUMS`` inside a model directory, one line per file, written into the directory
  before it is moved into place (the directory itself is replaced atomically), so
  ``sha256sum -c SHA256SUMS`` run in the directory checks it too.

A same-size overwrite of a few bytes (a bad disk, a partial copy) passes size checks and
often still parses; only the digest catches it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch

from .io import atomic_write_text

SIDECAR_SUFFIX = ".sha256"
DIRECTORY_SUMS = "SHA256SUMS"


class IntegrityError(RuntimeError):
    """A file does not match its recorded sha256, or holds non-finite weights."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sidecar(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_sidecar(path: str | Path, digests: list[str]) -> Path:
    """Record ``digests`` (the first one current) as the accepted contents of ``path``."""
    path = Path(path)
    lines = "".join(f"{d}  {path.name}\n" for d in dict.fromkeys(digests))
    return atomic_write_text(sidecar(path), lines)


def recorded_digests(path: str | Path) -> list[str] | None:
    """The digests ``path``'s sidecar accepts; None when it has no sidecar."""
    side = sidecar(path)
    if not side.is_file():
        return None
    return [line.split()[0] for line in side.read_text(encoding="utf-8").splitlines() if line.strip()]


def replace_with_sidecar(tmp: str | Path, path: str | Path, replace) -> Path:
    """Move the finished temporary file ``tmp`` over ``path``, keeping its sidecar true throughout.

    Order: sidecar lists old and new digests -> ``replace(tmp, path)`` -> sidecar lists the new
    one alone. A kill between any two steps leaves ``path`` matching a listed digest.
    """
    path = Path(path)
    new = file_sha256(tmp)
    old = recorded_digests(path) or []
    write_sidecar(path, [new, *old[:1]])
    replace(tmp, path)
    write_sidecar(path, [new])
    return path


def check_sidecar(path: str | Path, how_to_fix: str) -> None:
    """Raise `IntegrityError` when ``path`` has a sidecar and matches none of its digests."""
    digests = recorded_digests(path)
    if digests is not None and file_sha256(path) not in digests:
        raise IntegrityError(
            f"{path} does not match its sha256 in {sidecar(path).name} (corrupted or changed "
            f"after it was written); {how_to_fix}"
        )


def write_directory_sums(directory: str | Path) -> Path:
    """Write ``SHA256SUMS`` over every file below ``directory`` (call before the directory is published)."""
    directory = Path(directory)
    files = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.name != DIRECTORY_SUMS
    )
    lines = "".join(f"{file_sha256(p)}  {p.relative_to(directory).as_posix()}\n" for p in files)
    return atomic_write_text(directory / DIRECTORY_SUMS, lines)


def check_directory_sums(directory: str | Path) -> bool:
    """Check every file ``SHA256SUMS`` lists; False when the directory has none (nothing to check).

    Raises:
        IntegrityError: a listed file is missing, points outside the directory, or differs.
    """
    directory = Path(directory)
    sums = directory / DIRECTORY_SUMS
    if not sums.is_file():
        return False
    for line in sums.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        target = directory / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise IntegrityError(f"{sums} names {name!r}, outside its directory; refusing it")
        if not target.is_file():
            raise IntegrityError(
                f"{target} is missing (listed in {sums}); copy the whole model directory again"
            )
        if file_sha256(target) != digest:
            raise IntegrityError(
                f"{target} does not match its sha256 in {sums} (truncated, corrupted or changed); "
                "copy or save the model again (or load it with verify=False to skip the check)"
            )
    return True


def check_finite(tensors: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Raise `IntegrityError` naming the first floating-point tensor holding NaN or inf."""
    for name, tensor in tensors.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise IntegrityError(
                    f"{source}: weight {name} holds {bad} non-finite value(s) (NaN/inf); "
                    "the file is corrupt or training diverged: use an earlier checkpoint or model"
                )
