import csv
import logging

import pytest

from melscribe_torch.data import (
    DataError,
    held_out_clip_ids,
    load_conceptcaps,
    load_custom,
    load_lp_musiccaps,
    load_mc_test,
    load_musiccaps,
)


def write_csv(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_mtt_export_by_its_column_names(tmp_path):
    write_csv(
        tmp_path / "LP-MusicCaps-MTT" / "test.csv",
        ["track_id", "title", "tag_top188", "caption_writing"],
        [["1", "x", "['guitar' 'slow'\n 'classical']", "A slow classical guitar piece.\nCalm"]],
    )
    (record,) = load_lp_musiccaps(tmp_path, "mtt", "test")
    assert record.clip_id == "1"
    assert record.descriptors == ("guitar", "slow", "classical")
    assert record.caption == "A slow classical guitar piece. Calm"


def test_msd_export_uses_tag_column(tmp_path):
    write_csv(
        tmp_path / "LP-MusicCaps-MSD" / "train.csv",
        ["track_id", "tag", "caption_writing"],
        [["TR1", "['rock', 'loud']", "Loud rock."]],
    )
    assert load_lp_musiccaps(tmp_path, "msd", "train")[0].descriptors == ("rock", "loud")


def test_rows_with_any_missing_field_are_dropped_and_counted(tmp_path, caplog):
    write_csv(
        tmp_path / "LP-MusicCaps-MTT" / "test.csv",
        ["track_id", "year", "tag_top188", "caption_writing"],
        [["1", "1999", "['a']", "cap a"], ["2", "", "['b']", "cap b"], ["3", "2001", "['c']", "nan"]],
    )
    with caplog.at_level(logging.INFO):
        records = load_lp_musiccaps(tmp_path, "mtt", "test")
    assert [r.clip_id for r in records] == ["1"]
    assert "skipped 2 rows" in caplog.text


def test_missing_file_names_the_path_and_the_expected_columns(tmp_path):
    with pytest.raises(DataError, match=r"LP-MusicCaps-MTT.*test\.csv.*track_id, tag_top188"):
        load_lp_musiccaps(tmp_path, "mtt", "test")


def test_missing_column_lists_the_columns_found(tmp_path):
    write_csv(tmp_path / "LP-MusicCaps-MSD" / "test.csv", ["track_id", "tags", "caption_writing"], [])
    with pytest.raises(DataError, match=r"no column\(s\) tag;.*columns found: track_id, tags, caption_writing"):
        load_lp_musiccaps(tmp_path, "msd", "test")


def test_unknown_dataset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="valid"):
        load_lp_musiccaps(tmp_path, "xyz")


def test_custom_csv_with_configured_columns(tmp_path):
    path = write_csv(tmp_path / "mine.csv", ["request", "tags"], [["calm piano please", "piano, calm"], ["", "x"]])
    (record,) = load_custom(path, "request", "tags")
    assert record.caption == "calm piano please" and record.descriptors == ("piano", "calm")


def test_custom_csv_missing_column(tmp_path):
    path = write_csv(tmp_path / "mine.csv", ["text", "tags"], [["a", "b"]])
    with pytest.raises(DataError, match="columns found: text, tags"):
        load_custom(path, "request", "tags")


# Integration: the real data directory.

def test_mc_and_mc_reco_keep_only_rephrased_records(data_root):
    mc, reco = load_mc_test(data_root, rephrased=False), load_mc_test(data_root, rephrased=True)
    assert len(mc) == len(reco) == 2350
    assert [r.clip_id for r in mc] == [r.clip_id for r in reco]
    assert mc[0].caption != reco[0].caption and mc[0].descriptors == reco[0].descriptors


def test_musiccaps_splits_do_not_overlap_and_test_ids_are_held_out(data_root):
    train, held_out = load_musiccaps(data_root, "train"), held_out_clip_ids(data_root)
    assert len(train) == 2663 and len(load_musiccaps(data_root, "eval")) == 2858
    assert not {r.clip_id for r in train} & held_out
    assert not {r.clip_id for r in load_lp_musiccaps(data_root, "mc", "train")} & held_out


def test_conceptcaps_reads_all_three_files(data_root):
    assert len(load_conceptcaps(data_root)) == 5358 + 1191 + 1191
