import logging

import pytest
from recommend_fakes import SONGS, write_csv, write_jsonl

from melscribe_torch.data import DataError
from melscribe_torch.recommend.catalog import load_catalog


def test_csv_with_lp_musiccaps_and_comma_descriptors(tmp_path):
    songs = load_catalog(write_csv(tmp_path / "songs.csv", SONGS))
    assert [s.song_id for s in songs] == ["s1", "s2", "s3", "s4", "s5"]
    assert songs[0].descriptors == ("tropical", "steel drums", "upbeat")
    assert songs[2].descriptors == ("rock", "guitar", "upbeat")
    assert songs[2].artist is None and songs[0].title == "Island"


def test_jsonl_with_lists_and_custom_columns(tmp_path):
    rows = [{"ytid": "a", "tags": ["sad", "piano"]}, {"ytid": "b", "tags": "rock, guitar"}]
    songs = load_catalog(
        write_jsonl(tmp_path / "songs.jsonl", rows), id_column="ytid", descriptor_column="tags"
    )
    assert [(s.song_id, s.descriptors, s.title) for s in songs] == [
        ("a", ("sad", "piano"), None),
        ("b", ("rock", "guitar"), None),
    ]


def test_rows_without_descriptors_are_skipped_and_counted(tmp_path, caplog):
    rows = SONGS[:2] + [
        {"id": "e1", "title": "", "artist": "", "descriptors": ""},
        {"id": "e2", "title": "", "artist": "", "descriptors": "[]"},
    ]
    with caplog.at_level(logging.INFO):
        songs = load_catalog(write_csv(tmp_path / "songs.csv", rows))
    assert len(songs) == 2
    assert "skipped 2 rows without descriptors" in caplog.text


def test_duplicate_ids_are_named(tmp_path):
    rows = SONGS + [dict(SONGS[1]), dict(SONGS[4])]
    with pytest.raises(DataError, match="2 duplicate song id.*s2, s5"):
        load_catalog(write_csv(tmp_path / "songs.csv", rows))


def test_missing_file_and_column(tmp_path):
    with pytest.raises(DataError, match="not found.*nope.csv"):
        load_catalog(tmp_path / "nope.csv")
    path = write_csv(tmp_path / "songs.csv", SONGS)
    with pytest.raises(
        DataError,
        match=r"songs.csv: no column\(s\) tags; columns found: artist, descriptors, id, title",
    ):
        load_catalog(path, descriptor_column="tags")


def test_bad_jsonl_line_is_named(tmp_path):
    path = tmp_path / "songs.jsonl"
    path.write_text('{"id": "a", "descriptors": "sad"}\n{oops\n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_catalog(path)


YOUTUBE = "https://www.youtube.com/watch?v={ytid}&t={start_s}s"


def test_link_template_builds_source_urls(tmp_path):
    rows = [
        {"ytid": "-0Gj8-vB1q4", "start_s": "30", "descriptors": "sad, piano"},
        {"ytid": "a&b", "start_s": "0", "descriptors": "rock"},  # quoted, not a new parameter
        {"ytid": "c", "start_s": "", "descriptors": "jazz"},  # an empty field: no link
    ]
    songs = load_catalog(
        write_csv(tmp_path / "mc.csv", rows), id_column="ytid", link_template=YOUTUBE
    )
    assert [s.link for s in songs] == [
        "https://www.youtube.com/watch?v=-0Gj8-vB1q4&t=30s",
        "https://www.youtube.com/watch?v=a%26b&t=0s",
        None,
    ]
    assert load_catalog(write_csv(tmp_path / "plain.csv", SONGS))[0].link is None


@pytest.mark.parametrize(
    "template, message",
    [
        (YOUTUBE, "the link template names column(s) start_s, ytid that the file lacks"),
        ("https://example.org/", "names no column"),
        ("https://example.org/{id", "link template"),
    ],
)
def test_bad_link_template(tmp_path, template, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_catalog(write_csv(tmp_path / "songs.csv", SONGS), link_template=template)
