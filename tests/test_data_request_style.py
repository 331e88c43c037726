"""Caption sentences made request-like: worded as requests, one descriptor cut, sets drawn after."""

import pytest

from melscribe_torch.data.records import CaptionRecord
from melscribe_torch.data.request_style import (
    TRAINING_LEADS,
    VALIDATION_LEADS,
    RequestRewriter,
    as_request,
    without_descriptor,
)
from melscribe_torch.data.sampling import build_sampled_set


@pytest.mark.parametrize(
    ("sentence", "lead", "expected"),
    [
        # The subject becomes the object of the request.
        ("This upbeat pop song features steel drums.", "I'm looking for",
         "I'm looking for an upbeat pop song that features steel drums."),
        ("The low quality recording has a male vocal", "Play me",
         "Play me a low quality recording that has a male vocal."),
        ("A country song with a banjo", "Recommend", "Recommend a country song with a banjo."),
        ("This is an R&B/soul music piece", "Suggest", "Suggest an R&B/soul music piece."),
        ("This music is instrumental", "Put on", "Put on music that is instrumental."),
        # No such subject: "a song where ...".
        ("The tempo is fast", "Can you recommend?",
         "Can you recommend a song where the tempo is fast?"),
        ("A male vocalist sings", "I need", "I need a song where a male vocalist sings."),
        # Addressed to the listener already: quoted.
        ("Get ready to dance to this track!", "Find me",
         "Find me a song like this: Get ready to dance to this track."),
    ],
)
def test_a_sentence_becomes_a_request(sentence, lead, expected):
    assert as_request(sentence, lead) == expected


def test_training_and_validation_lead_ins_are_disjoint():
    assert not set(TRAINING_LEADS) & set(VALIDATION_LEADS)


def test_a_cut_descriptor_leaves_tidy_text():
    cut = without_descriptor("soft vocals, mellow piano, and drums.", "mellow piano")
    assert cut == "soft vocals, and drums."
    assert without_descriptor("no such words", "piano") == "no such words"


CAPTION = "A calm piano piece with slow tempo and soft strings"
RECORDS = [
    CaptionRecord(f"clip-{i}", CAPTION, ("piano", "slow tempo", "soft strings"), "x")
    for i in range(40)
]


def test_an_omitted_descriptor_is_no_longer_a_match_of_the_set_drawn_afterwards():
    rewritten = build_sampled_set(RECORDS, seed=0, rewrite=RequestRewriter(omit_fraction=1.0, restyle_fraction=0.0, seed=0))
    for qid, request in rewritten.queries.items():
        named = [d for d in RECORDS[0].descriptors if d in request]
        assert len(named) == 2  # exactly one of the three was cut
        (doc_id,) = rewritten.qrels[qid]
        in_set = rewritten.corpus[doc_id].split(", ")
        # The paper's draw: at least one named descriptor, and at most as many unnamed as named.
        assert set(in_set) & set(named)
        assert len(set(in_set) - set(named)) <= len(set(in_set) & set(named))


def test_fractions_choose_a_share_of_requests_and_zero_changes_nothing():
    plain = build_sampled_set(RECORDS, seed=0)
    assert build_sampled_set(RECORDS, seed=0, rewrite=RequestRewriter(0.0, 0.0, seed=0)) == plain
    half = build_sampled_set(RECORDS, seed=0, rewrite=RequestRewriter(omit_fraction=0.0, restyle_fraction=0.5, seed=0))
    changed = sum(half.queries[q] != plain.queries[q] for q in plain.queries)
    assert 8 <= changed <= 32


def test_draws_are_seeded_per_request_id_not_by_order():
    rewrite = RequestRewriter(omit_fraction=0.5, restyle_fraction=0.5, seed=3)
    sentence, descriptors = RECORDS[0].caption, RECORDS[0].descriptors
    alone = rewrite("clip-7_7", sentence, descriptors)
    for qid in ("clip-1_1", "clip-2_2"):
        rewrite(qid, sentence, descriptors)
    assert rewrite("clip-7_7", sentence, descriptors) == alone
    other_seed = RequestRewriter(omit_fraction=0.5, restyle_fraction=0.5, seed=4)
    assert [other_seed(f"q{i}", sentence, descriptors) for i in range(20)] != [
        rewrite(f"q{i}", sentence, descriptors) for i in range(20)
    ]


def test_a_fraction_outside_zero_to_one_is_a_clear_error():
    with pytest.raises(ValueError, match="omit_descriptor_fraction"):
        RequestRewriter(omit_fraction=1.5, restyle_fraction=0.0, seed=0)
