"""Descriptor lists as the LP-MusicCaps CSV exports write them.

Two export formats exist for the same list:

- Python literal:  ``"['low quality', 'sad', 'ballad']"``
- numpy style:     ``"['low quality' 'sad'\\n 'ballad']"``

Both are turned into the comma-joined text the paper's released code builds (``"low quality,
sad, ballad"``) with the same character replacements, so that the descriptor strings (and the
sampled descriptor sets built from them) are identical to the paper's.
"""

from __future__ import annotations

DESCRIPTOR_SEPARATOR = ", "


def clean_descriptor_field(raw: str) -> str:
    """Turn an exported descriptor list into comma-joined text, as the paper's code does.

    The replacements (brackets and quotes dropped, ``"' '"`` and newlines turned into
    separators) are kept verbatim: changing them changes the test sets.
    """
    return (
        raw.replace("[", "")
        .replace("]", "")
        .replace("' '", DESCRIPTOR_SEPARATOR)
        .replace("'", "")
        .replace("\n", ",")
    )


def parse_descriptor_list(raw: str) -> list[str]:
    """Split an exported descriptor list (either format) or a plain ``"a, b"`` string into descriptors.

    Empty pieces (from ``"[]"`` or stray separators) are dropped; order and duplicates are kept,
    since the paper's sampling draws from the list as written.
    """
    return [d for d in clean_descriptor_field(raw).split(DESCRIPTOR_SEPARATOR) if d.strip()]


def descriptor_set_text(descriptors: list[str] | tuple[str, ...]) -> str:
    """The document text of a descriptor set: descriptors joined with ``", "``."""
    return DESCRIPTOR_SEPARATOR.join(descriptors)


def describes(document: str, request: str) -> bool:
    """Whether every descriptor of ``document`` occurs in ``request`` (case-insensitive substring).

    Such a set would be a positive of ``request`` under the paper's sampling (``data.sampling``
    draws from the descriptors that occur in the sentence), so it must not be its negative:
    ``mining.drop_described`` and in-batch negatives' ``loss.mnrl.exclude_described`` use this rule.

    The sampling's match is a case-sensitive substring; ignoring case here drops a few more
    negatives ("Rock" at the start of a sentence), on the side of caution.
    """
    request = request.lower()
    return all(
        descriptor.strip().lower() in request
        for descriptor in document.split(DESCRIPTOR_SEPARATOR)
        if descriptor.strip()
    )
