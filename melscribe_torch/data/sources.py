"""Readers for the data sources, by their published column names.

Data directory layout (the one the paper's released code expects)::

    <root>/LP-MusicCaps-MC/test.csv            ytid, aspect_list, caption_writing, ...
    <root>/LP-MusicCaps-MC/train.csv           ytid, aspect_list, caption_writing, caption_summary,
                                               caption_paraphrase, caption_attribute_prediction, ...
    <root>/LP-MusicCaps-MC/mc_rephrased.csv    caption, caption_rephrased
    <root>/LP-MusicCaps-MTT/{train,valid,test}.csv   track_id, tag_top188, caption_writing, ...
    <root>/LP-MusicCaps-MSD/{train,valid,test}.csv   track_id, tag, caption_writing, ...
    <root>/MusicCaps/musiccaps-public.csv      ytid, aspect_list, caption, is_audioset_eval, ...
    <root>/ConceptCaps/{ft,final_validation,final_test}.csv   id, aspect_list, prediction

Every reader returns ``CaptionRecord``s in file order (the paper's sampling depends on it).
"""

from __future__ import annotations

import csv
import io
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .descriptors import parse_descriptor_list
from .records import CaptionRecord
from .text_files import DataError, read_text

log = logging.getLogger(__name__)

# Some captions are long; the csv module's default field limit (128 KiB) is too small for a few exports.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

# The strings pandas reads as NaN by default: the paper's code drops rows holding any of them.
MISSING_VALUES = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)

LP_MUSICCAPS_DIRS = {"mc": "LP-MusicCaps-MC", "mtt": "LP-MusicCaps-MTT", "msd": "LP-MusicCaps-MSD"}
# (id column, descriptor column) of each LP-MusicCaps export.
LP_MUSICCAPS_COLUMNS = {
    "mc": ("ytid", "aspect_list"),
    "mtt": ("track_id", "tag_top188"),
    "msd": ("track_id", "tag"),
}
LP_MUSICCAPS_CAPTION_STYLES = (
    "caption_writing",
    "caption_summary",
    "caption_paraphrase",
    "caption_attribute_prediction",
)
CONCEPTCAPS_FILES = ("ft.csv", "final_validation.csv", "final_test.csv")


def is_missing(value: str | None) -> bool:
    return value is None or value in MISSING_VALUES


def read_csv_rows(
    path: Path,
    required_columns: Sequence[str],
    what: str,
    how_to_fix: str = "set data.root to the data directory",
) -> list[dict[str, str]]:
    """Read a CSV file (UTF-8, BOM or not) into dicts, checking that it exists and has the required columns.

    Args:
        path: The CSV file.
        required_columns: Columns that must be present.
        what: What the file is, for error messages (e.g. "the LP-MusicCaps-MC test split").
        how_to_fix: What to set when the file is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{what}: file not found: {path} (expected a CSV with columns "
            f"{', '.join(required_columns)}; {how_to_fix})"
        )
    reader = csv.DictReader(io.StringIO(read_text(path, what), newline=""))
    found = reader.fieldnames or []
    missing = [c for c in required_columns if c not in found]
    if missing:
        raise DataError(
            f"{what}: {path} has no column(s) {', '.join(missing)}; "
            f"columns found: {', '.join(found) or '(none: empty file?)'}"
        )
    return list(reader)


def rows_to_records(
    rows: list[dict[str, str]],
    *,
    path: Path,
    id_column: str | None,
    caption_column: str,
    descriptor_column: str,
    source: str,
    drop_rows_with_any_missing: bool = False,
) -> list[CaptionRecord]:
    """Turn CSV rows into records, skipping (and counting in one log line) unusable rows.

    Args:
        drop_rows_with_any_missing: Drop a row when ANY of its columns is empty/NaN, as the
            paper's released code does (``DataFrame.dropna()``) for the test sets.
    """
    records: list[CaptionRecord] = []
    skipped = 0
    for row_number, row in enumerate(rows, start=2):  # row 1 is the header
        caption, raw_descriptors = row.get(caption_column), row.get(descriptor_column)
        if drop_rows_with_any_missing and any(is_missing(v) for v in row.values()):
            skipped += 1
            continue
        if is_missing(caption) or not caption.strip() or is_missing(raw_descriptors):
            skipped += 1
            continue
        descriptors = parse_descriptor_list(raw_descriptors)
        if not descriptors:
            skipped += 1
            continue
        clip_id = row[id_column] if id_column else f"row{row_number}"
        records.append(
            CaptionRecord(
                clip_id=str(clip_id),
                caption=caption.replace("\n", " "),
                descriptors=tuple(descriptors),
                source=source,
            )
        )
    if skipped:
        log.info(
            "%s: kept %d records, skipped %d rows with an empty or NaN caption/descriptor list",
            path, len(records), skipped,
        )
    return records


def load_lp_musiccaps(
    root: str | Path,
    dataset: str,
    split: str = "test",
    caption_columns: Sequence[str] = ("caption_writing",),
) -> list[CaptionRecord]:
    """Read an LP-MusicCaps split (``dataset`` in mc, mtt, msd) from its CSV export.

    Each caption column gives one record per row (the training split has four caption styles).
    Rows with any missing field are dropped, as the paper's released code does.
    """
    if dataset not in LP_MUSICCAPS_DIRS:
        raise ValueError(f"unknown LP-MusicCaps dataset {dataset!r}; valid: {sorted(LP_MUSICCAPS_DIRS)}")
    id_column, descriptor_column = LP_MUSICCAPS_COLUMNS[dataset]
    path = Path(root) / LP_MUSICCAPS_DIRS[dataset] / f"{split}.csv"
    rows = read_csv_rows(
        path, [id_column, descriptor_column, *caption_columns], f"LP-MusicCaps-{dataset.upper()} {split} split"
    )
    records: list[CaptionRecord] = []
    for caption_column in caption_columns:
        records += rows_to_records(
            rows,
            path=path,
            id_column=id_column,
            caption_column=caption_column,
            descriptor_column=descriptor_column,
            source=f"lp-musiccaps-{dataset}/{caption_column}",
            drop_rows_with_any_missing=True,
        )
    return records


def load_rephrasings(root: str | Path) -> dict[str, str]:
    """Map each single-sentence MC test caption to its rephrasing as a recommendation request."""
    path = Path(root) / "LP-MusicCaps-MC" / "mc_rephrased.csv"
    rows = read_csv_rows(path, ["caption", "caption_rephrased"], "the MC rephrased requests")
    return {row["caption"]: row["caption_rephrased"] for row in rows}


def load_mc_test(root: str | Path, rephrased: bool) -> list[CaptionRecord]:
    """The MC (``rephrased=False``) or MC_reco (``rephrased=True``) test records.

    As in the paper's released code, both keep only the records whose caption has a
    rephrasing; MC_reco replaces the caption with it.
    """
    rephrasings = load_rephrasings(root)
    records = [r for r in load_lp_musiccaps(root, "mc", "test") if rephrasings.get(r.caption)]
    if rephrased:
        records = [
            CaptionRecord(r.clip_id, rephrasings[r.caption], r.descriptors, "lp-musiccaps-mc/rephrased")
            for r in records
        ]
    return records


def load_musiccaps(root: str | Path, split: str) -> list[CaptionRecord]:
    """MusicCaps human captions: ``split="train"`` (is_audioset_eval False) or ``"eval"`` (True)."""
    if split not in ("train", "eval"):
        raise ValueError(f"MusicCaps split must be 'train' or 'eval', got {split!r}")
    path = Path(root) / "MusicCaps" / "musiccaps-public.csv"
    rows = read_csv_rows(path, ["ytid", "aspect_list", "caption", "is_audioset_eval"], "MusicCaps")
    want_eval = split == "eval"
    rows = [r for r in rows if (r["is_audioset_eval"].strip().lower() == "true") == want_eval]
    return rows_to_records(
        rows, path=path, id_column="ytid", caption_column="caption",
        descriptor_column="aspect_list", source=f"musiccaps/{split}",
    )


def load_conceptcaps(root: str | Path, files: Sequence[str] = CONCEPTCAPS_FILES) -> list[CaptionRecord]:
    """ConceptCaps synthetic captions (ids repeat across files: split by id, not by file)."""
    records: list[CaptionRecord] = []
    for name in files:
        path = Path(root) / "ConceptCaps" / name
        rows = read_csv_rows(path, ["id", "aspect_list", "prediction"], "ConceptCaps")
        records += rows_to_records(
            rows, path=path, id_column="id", caption_column="prediction",
            descriptor_column="aspect_list", source="conceptcaps",
        )
    return records


def load_custom(
    path: str | Path,
    request_column: str,
    descriptor_column: str,
    id_column: str | None = None,
) -> list[CaptionRecord]:
    """A user's CSV: one request and one descriptor list (either export format or ``"a, b"``) per row."""
    path = Path(path)
    required = [request_column, descriptor_column] + ([id_column] if id_column else [])
    rows = read_csv_rows(path, required, "custom test set", "set custom.path to your CSV file")
    return rows_to_records(
        rows, path=path, id_column=id_column, caption_column=request_column,
        descriptor_column=descriptor_column, source=f"custom:{path.name}",
    )


def held_out_clip_ids(root: str | Path) -> set[str]:
    """Ids of every clip in the MC test set (MusicCaps eval clips): never to be trained on."""
    ids = {r.clip_id for r in load_musiccaps(root, "eval")}
    mc_test = Path(root) / "LP-MusicCaps-MC" / "test.csv"
    if mc_test.is_file():
        ids |= {row["ytid"] for row in read_csv_rows(mc_test, ["ytid"], "LP-MusicCaps-MC test split")}
    return ids
