"""Reading a user's text file (CSV, JSONL): UTF-8, with or without the BOM spreadsheets write.

Any other encoding is refused with the file, the line and the likely encoding named, rather
than read as garbled descriptors or failing deep inside the csv module.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and the fix."""


def read_text(path: Path, what: str) -> str:
    """The text of ``path``, decoded as UTF-8 (a leading BOM dropped).

    Raises:
        DataError: the file is not UTF-8; the message names the file, the line and a fix.
    """
    data = Path(path).read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(
            f"{what} {path} is UTF-16 text; save it as UTF-8 (in a spreadsheet: CSV UTF-8), "
            f"or convert it: iconv -f UTF-16 -t UTF-8 {path.name} > {path.stem}-utf8{path.suffix}"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"{what} {path}, line {line}: byte 0x{data[error.start]:02x} is not UTF-8; the file looks "
            f"like {_likely_encoding(data)} text: save it as UTF-8, or convert it: "
            f"iconv -f CP1252 -t UTF-8 {path.name} > {path.stem}-utf8{path.suffix}"
        ) from None


def read_jsonl_objects(path: Path, what: str) -> list[tuple[int, dict]]:
    """The JSON objects of a JSON Lines file, each with its line number; blank lines skipped.

    Raises:
        DataError: the file is not UTF-8, or a line is not a JSON object; the message names
            ``what``, the file and the line.
    """
    rows: list[tuple[int, dict]] = []
    for n, line in enumerate(read_text(path, what).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{what} {path}, line {n}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{what} {path}, line {n}: expected a JSON object, got {type(row).__name__}")
        rows.append((n, row))
    return rows


def _likely_encoding(data: bytes) -> str:
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "non-UTF-8 (e.g. Latin-1)"
    return "Windows-1252 / Latin-1"
