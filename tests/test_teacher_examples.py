"""Teacher examples and groups: positives, hard and random negatives, and the split by request."""

import pytest

from melscribe_torch.data import RetrievalSet
from melscribe_torch.teacher import build_teacher_examples, build_teacher_groups, split_examples, split_groups


def pairs() -> RetrievalSet:
    corpus = {f"d{i}": f"descriptor set {i}" for i in range(12)}
    queries = {"q0": "request zero", "q1": "request one", "q2": "request two"}
    qrels = {"q0": {"d0", "d1"}, "q1": {"d2"}, "q2": {"d3"}}
    return RetrievalSet(queries=queries, corpus=corpus, qrels=qrels)


HARD = {
    "q0": {"qid": "q0", "pos": ["d0", "d1"], "neg": {"a": ["d4", "d5"], "b": ["d5", "d6"]}},
    "q1": {"qid": "q1", "pos": ["d2"], "neg": {"a": ["d7"], "b": []}},
}


def test_each_positive_gets_its_hard_and_random_negatives():
    data = pairs()
    examples = build_teacher_examples(
        data, HARD, negatives_per_positive=2, random_negatives=1, seed=0
    )
    text_to_id = {text: doc_id for doc_id, text in data.corpus.items()}
    by_request = {}
    for query, doc, label in examples:
        by_request.setdefault(query, []).append((text_to_id[doc], label))
    q0 = by_request["request zero"]
    assert [doc for doc, label in q0 if label == 1.0] == ["d0", "d1"]
    # two hard (from the union over retrievers) + one random per positive
    assert len(q0) == 2 * (1 + 2 + 1)
    assert all(doc not in ("d0", "d1") for doc, label in q0 if label == 0.0)
    hard_q0 = [doc for doc, label in q0 if label == 0.0 and doc in ("d4", "d5", "d6")]
    assert len(hard_q0) >= 4
    # q1 mined one negative: it gets just that one hard negative, plus a random one
    assert len(by_request["request one"]) == 3 and ("d7", 0.0) in by_request["request one"]
    # q2 has no mined negatives: positive + random only
    assert len(by_request["request two"]) == 2


def test_deterministic_for_a_seed_and_random_only_without_mining():
    data = pairs()
    one_each = {"negatives_per_positive": 1, "random_negatives": 1, "seed": 3}
    assert build_teacher_examples(data, HARD, **one_each) == build_teacher_examples(data, HARD, **one_each)
    examples = build_teacher_examples(
        data, None, negatives_per_positive=5, random_negatives=2, seed=0
    )
    assert len(examples) == 4 * (1 + 2)


def test_negatives_from_another_corpus_are_refused():
    bad = {"q1": {"qid": "q1", "pos": ["d2"], "neg": {"a": ["d99"]}}}
    with pytest.raises(KeyError, match="d99"):
        build_teacher_examples(pairs(), bad, negatives_per_positive=1, random_negatives=1, seed=0)


def test_split_holds_out_whole_requests():
    examples = build_teacher_examples(pairs(), HARD, negatives_per_positive=1, random_negatives=1, seed=0)
    train, valid = split_examples(examples, valid_fraction=0.34, seed=0)
    assert len(train) + len(valid) == len(examples) and valid
    assert not {q for q, _, _ in train} & {q for q, _, _ in valid}


def test_groups_put_the_positive_first_then_hard_then_random_negatives():
    data = pairs()
    groups = build_teacher_groups(data, HARD, group_size=5, seed=0)
    text_to_id = {text: doc_id for doc_id, text in data.corpus.items()}
    by_request = {}
    for query, docs in groups:
        by_request.setdefault(query, []).append([text_to_id[doc] for doc in docs])
    assert [ids[0] for ids in by_request["request zero"]] == ["d0", "d1"]  # one group per positive
    for ids in by_request["request zero"]:
        assert len(ids) == len(set(ids)) == 5 and not {"d0", "d1"} & set(ids[1:])
        assert set(ids[1:4]) == {"d4", "d5", "d6"}  # every mined one (three), then random fill
    (q1,) = by_request["request one"]
    assert q1[:2] == ["d2", "d7"] and "d2" not in q1[2:] and len(set(q1)) == 5
    (q2,) = by_request["request two"]  # nothing mined: random negatives only
    assert q2[0] == "d3" and len(set(q2)) == 5


def test_groups_are_deterministic_for_a_seed_and_change_with_it():
    data = pairs()
    first = build_teacher_groups(data, HARD, group_size=4, seed=1)
    assert first == build_teacher_groups(data, HARD, group_size=4, seed=1)
    assert first != build_teacher_groups(data, HARD, group_size=4, seed=2)


def test_group_settings_the_corpus_cannot_fill_are_refused():
    with pytest.raises(ValueError, match="lower teacher.group_size"):
        build_teacher_groups(pairs(), None, group_size=12, seed=0)  # q0 has 10 non-positives
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        build_teacher_groups(pairs(), None, group_size=1, seed=0)


def test_groups_are_held_out_with_the_requests_the_examples_held_out():
    data = pairs()
    examples = build_teacher_examples(data, HARD, negatives_per_positive=1, random_negatives=1, seed=0)
    _, valid = split_examples(examples, valid_fraction=0.34, seed=0)
    held_out = {q for q, _, _ in valid}
    train_groups, valid_groups = split_groups(build_teacher_groups(data, HARD, group_size=3, seed=0), held_out)
    assert {q for q, _ in valid_groups} == held_out
    assert not {q for q, _ in train_groups} & held_out and train_groups
