import pytest

from melscribe_torch.data import CaptionRecord, build_full_set, build_sampled_set

RECORDS = [
    CaptionRecord(
        "clip-a",
        "This amateur recording features a steeldrum melody in a higher register. It sounds joyful and tropical",
        ("steeldrum", "higher register", "amateur recording", "joyful"),
    ),
    CaptionRecord(
        "clip-b",
        "This cinematic piece blends haunting soundeffects with triumphant horn honking",
        ("cinematic", "soundeffects", "horn honking"),
    ),
    CaptionRecord("clip-c", "A sad ballad. Nothing else to say", ("low quality", "sad", "ballad", "soft female vocal")),
]

# Produced by the paper's released sampling loop (global `random.seed`, same calls, same order).
GOLDEN_SEED0_ONE_DOC = [
    ("This amateur recording features a steeldrum melody in a higher register", ["higher register, joyful, steeldrum"]),
    ("It sounds joyful and tropical", ["joyful"]),
    ("This cinematic piece blends haunting soundeffects with triumphant horn honking", ["horn honking, soundeffects, cinematic"]),
    ("A sad ballad", ["ballad"]),
    ("Nothing else to say", [""]),
]
GOLDEN_SEED42_THREE_DOCS = [
    ("This amateur recording features a steeldrum melody in a higher register", ["amateur recording, higher register, steeldrum", "steeldrum"]),
    ("It sounds joyful and tropical", ["higher register, joyful", "joyful"]),
    ("This cinematic piece blends haunting soundeffects with triumphant horn honking", ["cinematic", "cinematic, soundeffects", "soundeffects"]),
    ("A sad ballad", ["ballad, sad", "sad, ballad", "soft female vocal, ballad, low quality, sad"]),
    ("Nothing else to say", [""]),
]


def as_pairs(retrieval_set):
    return [
        (text, sorted(retrieval_set.corpus[d] for d in retrieval_set.qrels[qid]))
        for qid, text in retrieval_set.queries.items()
    ]


@pytest.mark.parametrize(
    "seed, docs_per_query, golden",
    [(0, 1, GOLDEN_SEED0_ONE_DOC), (42, 3, GOLDEN_SEED42_THREE_DOCS)],
)
def test_sampling_reproduces_the_papers_descriptor_sets(seed, docs_per_query, golden):
    assert as_pairs(build_sampled_set(RECORDS, seed=seed, docs_per_query=docs_per_query)) == golden


def test_corpus_holds_each_distinct_descriptor_set_once():
    rs = build_sampled_set(RECORDS, seed=42, docs_per_query=3)
    assert len(set(rs.corpus.values())) == len(rs.corpus)
    assert all(doc_id in rs.corpus for ids in rs.qrels.values() for doc_id in ids)


def test_request_ids_name_their_clip():
    rs = build_sampled_set(RECORDS, seed=0)
    assert [qid.split("_")[0] for qid in rs.queries] == ["clip-a", "clip-a", "clip-b", "clip-c", "clip-c"]


def test_sampling_leaves_global_random_state_alone():
    import random

    random.seed(123)
    expected = random.random()
    random.seed(123)
    build_sampled_set(RECORDS, seed=0)
    assert random.random() == expected


def test_full_sampling_uses_whole_caption_and_whole_descriptor_set():
    rs = build_full_set(RECORDS)
    assert list(rs.queries.values()) == [r.caption for r in RECORDS]
    assert [rs.corpus[next(iter(rs.qrels[q]))] for q in rs.queries][2] == "low quality, sad, ballad, soft female vocal"


def test_docs_per_query_must_be_positive():
    with pytest.raises(ValueError, match="docs_per_query"):
        build_sampled_set(RECORDS, seed=0, docs_per_query=0)
