"""Data: source readers, the paper's request/descriptor-set sampling, BeIR I/O, test sets."""

from .beir import read_beir, write_beir
from .descriptors import clean_descriptor_field, descriptor_set_text, parse_descriptor_list
from .records import CaptionRecord
from .sampling import RetrievalSet, build_full_set, build_sampled_set, split_sentences
from .sources import (
    DataError,
    held_out_clip_ids,
    load_conceptcaps,
    load_custom,
    load_lp_musiccaps,
    load_mc_test,
    load_musiccaps,
)
from .test_sets import TEST_SETS, custom_test_set, paper_test_set, make_test_set

__all__ = [
    "CaptionRecord", "DataError", "RetrievalSet", "TEST_SETS", "build_full_set", "build_sampled_set",
    "clean_descriptor_field", "custom_test_set", "descriptor_set_text", "held_out_clip_ids",
    "load_conceptcaps", "load_custom", "load_lp_musiccaps", "load_mc_test", "load_musiccaps",
    "paper_test_set", "parse_descriptor_list", "read_beir", "split_sentences", "make_test_set",
    "write_beir",
]
