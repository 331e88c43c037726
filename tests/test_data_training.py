"""Training data: the validation split by clip, training pairs and the validation sets."""

import pytest

from melscribe_torch.data import DataError
from melscribe_torch.data.records import CaptionRecord
from melscribe_torch.data.training import (
    build_training_pairs,
    build_validation_set,
    split_by_clip,
    split_for_validation,
)

RECORDS = [
    # LLM-style captions name their descriptors; the human one's second sentence names none.
    CaptionRecord("clip-a", "a calm piano piece. slow tempo", ("piano", "slow tempo"), "lp-musiccaps-mc/caption_writing"),
    CaptionRecord("clip-a", "soft piano playing", ("piano", "slow tempo"), "lp-musiccaps-mc/caption_summary"),
    CaptionRecord("clip-b", "loud rock guitar. it is great", ("rock", "guitar"), "musiccaps/train"),
    CaptionRecord("tags-1", "an upbeat techno beat", ("techno", "upbeat"), "conceptcaps"),
]


def test_a_clip_lands_in_one_split_in_every_source():
    records = [CaptionRecord(f"clip-{i}", "x", ("y",), source) for i in range(200) for source in ("a", "b")]
    train, valid = split_by_clip(records, 0.2, seed=0)
    assert {r.clip_id for r in train}.isdisjoint({r.clip_id for r in valid})
    assert 20 <= len({r.clip_id for r in valid}) <= 60


def test_training_pairs_drop_empty_descriptor_sets():
    pairs = build_training_pairs(RECORDS, seed=0, docs_per_query=3)
    assert "" not in pairs.corpus.values()
    assert "it is great" not in pairs.queries.values()  # names no descriptor: its only set was empty
    assert all(pairs.qrels[q] for q in pairs.queries)


def test_one_per_clip_validation_has_one_request_and_one_set_per_clip_like_the_test_sets():
    valid = build_validation_set(RECORDS, seed=0, request_sources=["lp-musiccaps", "musiccaps"], layout="one_per_clip")
    clips = [qid.rsplit("_", 1)[0] for qid in valid.queries]
    assert sorted(clips) == ["clip-a", "clip-b"]  # tags-1 comes from a source not asked for
    # clip-a: its first-preferred record (caption_writing), first sentence; clip-b: its human caption
    assert set(valid.queries.values()) == {"a calm piano piece", "loud rock guitar"}
    assert set(valid.corpus) == set().union(*valid.qrels.values())  # no same-clip or foreign distractors
    assert "techno" not in " ".join(valid.corpus.values())


def test_one_per_clip_prefers_the_earlier_request_source():
    valid = build_validation_set(
        RECORDS, seed=0, request_sources=["lp-musiccaps-mc/caption_summary", "lp-musiccaps"], layout="one_per_clip"
    )
    assert list(valid.queries.values()) == ["soft piano playing"]


def test_held_out_ids_that_give_no_request_go_back_to_training():
    records = [CaptionRecord(f"clip-{i}", "piano", ("piano",), "musiccaps/train") for i in range(100)]
    records += [CaptionRecord(f"tags-{i}", "piano", ("piano",), "conceptcaps") for i in range(100)]
    train, valid = split_for_validation(records, 0.3, 0, ["musiccaps"], "one_per_clip")
    assert {r.source for r in valid} == {"musiccaps/train"}
    assert sum(r.source == "conceptcaps" for r in train) == 100
    assert len(train) + len(valid) == len(records)
    # the earlier layout keeps every held-out record out of training (they are corpus distractors)
    _, valid_all = split_for_validation(records, 0.3, 0, ["musiccaps"], "all_sentences")
    assert "conceptcaps" in {r.source for r in valid_all}


def test_all_sentences_validation_requests_come_from_the_chosen_sources_and_the_corpus_from_all():
    valid = build_validation_set(RECORDS, seed=0, request_sources=["lp-musiccaps"], layout="all_sentences")
    assert set(valid.queries.values()) == {"a calm piano piece", "slow tempo", "soft piano playing"}
    corpus_words = " ".join(valid.corpus.values())
    # the other sources' descriptor sets stay in as distractors
    assert "rock" in corpus_words or "guitar" in corpus_words
    assert "techno" in corpus_words or "upbeat" in corpus_words
    assert "" not in valid.corpus.values()
    assert all(valid.qrels[q] <= set(valid.corpus) for q in valid.queries)


def test_all_sentences_validation_without_a_source_filter_keeps_every_non_empty_request():
    valid = build_validation_set(RECORDS, seed=0, request_sources=None, layout="all_sentences")
    assert "loud rock guitar" in valid.queries.values()
    assert "it is great" not in valid.queries.values()


def test_validation_from_sources_not_trained_on_is_a_clear_error():
    with pytest.raises(DataError, match="valid_request_sources"):
        build_validation_set(RECORDS, seed=0, request_sources=["lp-musiccaps-msd"], layout="one_per_clip")
    with pytest.raises(ValueError, match="one_per_clip"):
        build_validation_set(RECORDS, seed=0, request_sources=None, layout="every_other_sentence")
