"""Caption records: the unit every data source is read into.

A record is one caption of one clip (or track) with that clip's descriptors. Requests are
built from its caption's sentences, documents from its descriptors (see ``sampling``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CaptionRecord:
    """One caption of one clip.

    Attributes:
        clip_id: The clip or track id (``ytid`` for MusicCaps, ``track_id`` for MTT/MSD).
        caption: The caption text (newlines already turned into spaces).
        descriptors: The clip's descriptors, in file order.
        source: Where the record came from (e.g. ``"musiccaps"``), for counts and reports.
    """

    clip_id: str
    caption: str
    descriptors: tuple[str, ...]
    source: str = ""
