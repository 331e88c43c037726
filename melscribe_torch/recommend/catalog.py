"""Song catalogs: a CSV or JSONL file with one song per row.

Schema (column names configurable):

- id column (default ``id``): the song id, unique in the file.
- descriptor column (default ``descriptors``): the song's descriptors, either a list
  (JSONL), an LP-MusicCaps export string (``"['sad', 'piano']"`` or numpy style) or a
  comma-separated string (``"sad, piano"``).
- title / artist columns (default ``title`` / ``artist``): optional; used when present.
- a link to the song's source (optional): a template filled from the row's columns, e.g.
  ``https://www.youtube.com/watch?v={ytid}&t={start_s}s`` for MusicCaps clips.

Rows without descriptors are skipped and counted in one log line.
"""

from __future__ import annotations

import csv
import io
import logging
import string
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..data.descriptors import parse_descriptor_list
from ..data.sources import DataError, is_missing
from ..data.text_files import read_jsonl_objects, read_text

log = logging.getLogger(__name__)

CATALOG_FORMATS = (".csv", ".jsonl")


@dataclass(frozen=True)
class Song:
    """One catalog entry.

    Attributes:
        song_id: Unique id of the song.
        descriptors: Its descriptors, in file order (at least one).
        title: Optional title.
        artist: Optional artist.
        link: Optional URL of the song's source (e.g. a YouTube clip at its start time).
    """

    song_id: str
    descriptors: tuple[str, ...]
    title: str | None = None
    artist: str | None = None
    link: str | None = None


def load_catalog(
    path: str | Path,
    id_column: str = "id",
    descriptor_column: str = "descriptors",
    title_column: str | None = "title",
    artist_column: str | None = "artist",
    link_template: str | None = None,
) -> list[Song]:
    """Read a CSV or JSONL catalog into songs, in file order.

    Args:
        path: A ``.csv`` or ``.jsonl`` file.
        id_column: Column holding the song id (required).
        descriptor_column: Column holding the descriptors (required).
        title_column: Column holding the title; used when the file has it.
        artist_column: Column holding the artist; used when the file has it.
        link_template: A ``str.format`` template of the song's source URL over the row's
            columns (``"https://www.youtube.com/watch?v={ytid}&t={start_s}s"``); rows with
            an empty field get no link.

    Returns:
        The songs with at least one descriptor.

    Raises:
        DataError: missing file or column (the message lists the columns found), unknown
            format, a malformed JSONL line, or duplicate song ids (the message names them).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"catalog file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in CATALOG_FORMATS:
        raise DataError(
            f"catalog {path}: unknown format {suffix!r}; use one of {', '.join(CATALOG_FORMATS)}"
        )
    rows, columns = _read_csv(path) if suffix == ".csv" else _read_jsonl(path)
    missing = [c for c in (id_column, descriptor_column) if c not in columns]
    if missing:
        raise DataError(
            f"catalog {path}: no column(s) {', '.join(missing)}; columns found: "
            f"{', '.join(sorted(columns)) or '(none: empty file?)'}; "
            "choose them with --id-column / --descriptor-column"
        )
    _check_link_template(path, link_template, columns)
    songs: list[Song] = []
    skipped = 0
    seen: dict[str, int] = {}
    duplicates: list[str] = []
    for row_number, row in rows:
        song_id = row.get(id_column)
        if song_id is None or (isinstance(song_id, str) and is_missing(song_id.strip())):
            raise DataError(
                f"catalog {path}, row {row_number}: empty song id in column {id_column!r}"
            )
        song_id = str(song_id).strip()
        descriptors = _descriptors(row.get(descriptor_column))
        if not descriptors:
            skipped += 1
            continue
        if song_id in seen:
            duplicates.append(song_id)
            continue
        seen[song_id] = row_number
        songs.append(
            Song(
                song_id=song_id,
                descriptors=tuple(descriptors),
                title=_optional(row, title_column),
                artist=_optional(row, artist_column),
                link=_link(row, link_template),
            )
        )
    if duplicates:
        shown = sorted(set(duplicates))
        raise DataError(
            f"catalog {path}: {len(shown)} duplicate song id(s) in column {id_column!r}: "
            f"{', '.join(shown[:10])}{' ...' if len(shown) > 10 else ''}; song ids must be unique"
        )
    if skipped:
        log.warning(
            "catalog %s: kept %d songs, skipped %d rows without descriptors",
            path,
            len(songs),
            skipped,
        )
    if not songs:
        raise DataError(f"catalog {path}: no song with descriptors in column {descriptor_column!r}")
    return songs


def _descriptors(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(d).strip() for d in value if str(d).strip()]
    text = str(value)
    if is_missing(text.strip()):
        return []
    return [d.strip() for d in parse_descriptor_list(text) if d.strip()]


def _check_link_template(path: Path, template: str | None, columns: set[str]) -> None:
    if template is None:
        return
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise DataError(f"link template {template!r}: {err}") from None
    if not fields:
        raise DataError(f"link template {template!r} names no column, e.g. {{ytid}}")
    missing = sorted(fields - columns)
    if missing:
        raise DataError(
            f"catalog {path}: the link template names column(s) {', '.join(missing)} that the "
            f"file lacks; columns found: {', '.join(sorted(columns))}"
        )


def _link(row: dict, template: str | None) -> str | None:
    if template is None:
        return None
    values = {}
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        value = row.get(name)
        if value is None or is_missing(str(value).strip()):
            return None
        # quote: an id with '&' or '#' must not change the URL's structure
        values[name] = urllib.parse.quote(str(value).strip(), safe="")
    return template.format(**values)


def _optional(row: dict, column: str | None) -> str | None:
    value = row.get(column) if column else None
    if value is None or (isinstance(value, str) and is_missing(value.strip())):
        return None
    return str(value)


def _read_csv(path: Path) -> tuple[list[tuple[int, dict]], set[str]]:
    reader = csv.DictReader(io.StringIO(read_text(path, "catalog"), newline=""))
    columns = set(reader.fieldnames or [])
    # row 1 is the header
    return [(n, row) for n, row in enumerate(reader, start=2)], columns


def _read_jsonl(path: Path) -> tuple[list[tuple[int, dict]], set[str]]:
    rows = read_jsonl_objects(path, "catalog")
    return rows, set().union(*(row.keys() for _, row in rows))
