"""An index folder is shared with the user's own files: the index removes only what it wrote."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys

import pytest
from recommend_fakes import FAKE_MODEL, SONGS, KeywordEncoder, write_csv

from melscribe_torch.locking import LockError
from melscribe_torch.recommend.catalog import load_catalog
from melscribe_torch.recommend.index import MANIFEST, build_index, load_index
from melscribe_torch.recommend.index_folder import PENDING, UnsafeManifestError


@pytest.fixture
def songs(tmp_path):
    return load_catalog(write_csv(tmp_path / "catalog.csv", SONGS))


def build(songs, out, **kwargs):
    return build_index(songs, KeywordEncoder(), out, FAKE_MODEL, dim=KeywordEncoder.dim, **kwargs)


def test_the_users_files_survive_every_rebuild_and_are_named_in_a_warning(tmp_path, songs, caplog):
    folder = tmp_path / "idx"
    folder.mkdir()
    # Named like index files on purpose: cleanup by name pattern once deleted exactly these.
    mine = {"songs-2024.csv": "id,descriptors\n", "descriptors-notes.txt": "my notes\n"}
    for name, text in mine.items():
        (folder / name).write_text(text)
    first = build(songs[:3], folder)
    with caplog.at_level(logging.WARNING, logger="melscribe_torch.recommend.index_folder"):
        build(songs, folder)
    for name, text in mine.items():
        assert (folder / name).read_text() == text
    assert "songs-2024.csv" in caplog.text and "descriptors-notes.txt" in caplog.text
    # the replaced generation's files were the index's own: gone
    for entry in first.manifest["files"].values():
        assert not (folder / entry["name"]).exists()
    assert [s.song_id for s in load_index(folder).songs] == ["s1", "s2", "s3", "s4", "s5"]


def test_what_a_killed_write_left_is_removed_by_the_next_write(tmp_path, songs):
    folder = tmp_path / "idx"
    build(songs[:3], folder)
    # A write killed after announcing and writing part of its files, and mid-way through a temp file:
    orphan, temp = folder / "sets-deadbeef0000.json", folder / ".manifest.json.ab12cd34.tmp"
    orphan.write_text("[]")
    temp.write_text("{")
    (folder / PENDING).write_text(
        json.dumps({"writing": [orphan.name, "songs-deadbeef0000.jsonl"], "replacing": []})
    )
    (folder / "notes.txt").write_text("mine")
    assert [s.song_id for s in load_index(folder).songs] == ["s1", "s2", "s3"]  # still loadable
    build(songs, folder)
    assert not orphan.exists() and not temp.exists() and not (folder / PENDING).exists()
    assert (folder / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("name", ["../../outside.txt", "/etc/hostname", "sub/../../x"])
def test_a_manifest_naming_a_path_outside_its_folder_is_refused(tmp_path, songs, name):
    folder = tmp_path / "a" / "idx"
    build(songs, folder)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"]["sets"]["name"] = name
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UnsafeManifestError, match="not a file of its folder"):
        load_index(folder)
    with pytest.raises(UnsafeManifestError):  # nor is anything it names deleted by a rebuild
        build(songs, folder)
    assert outside.read_text() == "keep me"


def test_index_files_get_the_umask_permissions(tmp_path, songs):
    old = os.umask(0o022)
    try:
        build(songs, tmp_path / "idx")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "idx").iterdir()}
    assert set(modes.values()) == {0o644}, modes


HOLD_LOCK = """
import sys, time
from melscribe_torch.locking import exclusive_lock
with exclusive_lock(sys.argv[1], "index folder", "wait"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_refused_naming_the_holder_and_a_killed_holder_frees_the_folder(
    tmp_path, songs, caplog
):
    folder = tmp_path / "idx"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockError, match=rf"index folder {folder} is in use by PID {holder.pid} on .+ \(started"):
            build(songs, folder)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with caplog.at_level(logging.INFO, logger="melscribe_torch.locking"):
        build(songs, folder)  # the kernel released the dead holder's lock: nothing to clear by hand
    assert f"took over the lock of PID {holder.pid}" in caplog.text
    assert [s.song_id for s in load_index(folder).songs] == ["s1", "s2", "s3", "s4", "s5"]
