"""Pseudo-labels: GPL tuple sampling, teacher margins with deduplicated scoring, the TSV file."""


import pytest
import torch

from melscribe_torch.data import RetrievalSet
from melscribe_torch.labeling import (
    label_margins,
    read_gpl_training_data,
    read_training_tuples,
    sample_training_tuples,
    write_gpl_training_data,
    write_training_tuples,
)

HARD = {
    "q0": {"qid": "q0", "pos": ["d0", "d1"], "neg": {"dense": ["d2", "d3"], "tfidf": ["d4"]}},
    "q1": {"qid": "q1", "pos": ["d5"], "neg": {"dense": ["d6"], "tfidf": []}},
    "q2": {
        "qid": "q2",
        "pos": ["d7"],
        "neg": {"dense": [], "tfidf": []},
    },  # nothing mined: never drawn
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def pairs() -> RetrievalSet:
    corpus = {
        "d0": "rock, guitar",
        "d1": "rock, drums, loud",
        "d2": "pop, guitar",
        "d3": "jazz, bass",
        "d4": "rock, soft",
        "d5": "calm piano",
        "d6": "piano, fast tempo",
        "d7": "sad vocal",
    }
    queries = {
        "q0": "loud rock music",
        "q1": "calm piano for the evening",
        "q2": "sad female singer",
    }
    return RetrievalSet(
        queries=queries, corpus=corpus, qrels={"q0": {"d0", "d1"}, "q1": {"d5"}, "q2": {"d7"}}
    )


def test_tuples_are_deterministic_and_drawn_from_listed_ids():
    tuples = sample_training_tuples(HARD, 200, seed=0)
    assert tuples == sample_training_tuples(HARD, 200, seed=0)
    assert tuples != sample_training_tuples(HARD, 200, seed=1)
    assert len(tuples) == 200
    for qid, pos_id, neg_id in tuples:
        record = HARD[qid]
        assert pos_id in record["pos"]
        assert any(neg_id in ids for ids in record["neg"].values())
    assert {qid for qid, _, _ in tuples} == {"q0", "q1"}
    # the retriever is drawn first: q0's single tfidf negative is about as frequent as both dense ones
    q0_negs = [neg for qid, _, neg in tuples if qid == "q0"]
    assert 0.3 < q0_negs.count("d4") / len(q0_negs) < 0.7


def test_tuples_do_not_depend_on_dict_order():
    reordered = dict(reversed(list(HARD.items())))
    assert sample_training_tuples(reordered, 50, seed=3) == sample_training_tuples(HARD, 50, seed=3)


def test_nothing_to_sample_is_an_error():
    with pytest.raises(ValueError, match="no request has both"):
        sample_training_tuples({"q2": HARD["q2"]}, 5, seed=0)


class CountingTeacher:
    """Wraps a CrossEncoder and records every pair sent to predict."""

    def __init__(self, model):
        self.model = model
        self.scored: list[tuple[str, str]] = []

    def predict(self, pairs, **kwargs):
        self.scored += list(pairs)
        return self.model.predict(pairs, **kwargs)


def test_margins_equal_a_naive_forward_loop_and_each_pair_is_scored_once(teacher):
    data = pairs()
    tuples = sample_training_tuples(HARD, 16, seed=0)
    counting = CountingTeacher(teacher)
    margins = label_margins(counting, data, tuples, batch_size=3, precision="fp32")

    distinct = {(data.queries[q], data.corpus[d]) for q, p, n in tuples for d in (p, n)}
    assert len(counting.scored) == len(distinct) == len(set(counting.scored))

    def score(query, doc):
        with torch.no_grad():
            return teacher(**teacher.tokenize_pairs([query], [doc])).item()

    naive = [
        score(data.queries[q], data.corpus[p]) - score(data.queries[q], data.corpus[n])
        for q, p, n in tuples
    ]
    torch.testing.assert_close(torch.tensor(margins), torch.tensor(naive), atol=1e-5, rtol=1e-5)


def test_bf16_margins_stay_close_to_fp32(teacher):
    # The default labels in bf16 (train.label_precision): the margins must keep their sign
    # and size, not just be numbers.
    data = pairs()
    tuples = sample_training_tuples(HARD, 16, seed=0)
    fp32 = torch.tensor(label_margins(teacher, data, tuples, batch_size=128, precision="fp32"))
    bf16 = torch.tensor(label_margins(teacher, data, tuples, batch_size=128, precision="bf16"))
    assert not torch.equal(fp32, bf16)  # autocast really ran
    torch.testing.assert_close(bf16, fp32, atol=0.05 * fp32.abs().max().item() + 1e-3, rtol=0)


def test_margins_refuse_unknown_ids(teacher):
    with pytest.raises(KeyError, match="d99"):
        label_margins(teacher, pairs(), [("q0", "d0", "d99")], batch_size=128, precision="fp32")


def test_gpl_file_round_trip(tmp_path):
    tuples = [("q0", "d0", "d2"), ("q1", "d5", "d6")]
    margins = [1.25, -0.1 + 1e-17]
    path = write_gpl_training_data(tmp_path / "gpl-training-data.tsv", tuples, margins)
    assert path.read_text().splitlines()[0] == "q0\td0\td2\t1.25"
    assert read_gpl_training_data(path) == [t + (m,) for t, m in zip(tuples, margins)]


def test_unlabelled_tuples_round_trip_and_name_a_bad_line(tmp_path):
    tuples = [("q0", "d0", "d2"), ("q1", "d5", "d6")]
    path = write_training_tuples(tmp_path / "training-tuples.tsv", tuples)
    assert read_training_tuples(path) == tuples
    path.write_text("q0\td0\td2\nq1\td5\n")
    with pytest.raises(ValueError, match=r"training-tuples.tsv:2: expected 3 tab-separated fields"):
        read_training_tuples(path)


def test_writing_checks_lengths_and_values(tmp_path):
    with pytest.raises(ValueError, match="one margin per tuple"):
        write_gpl_training_data(tmp_path / "g.tsv", [("q0", "d0", "d1")], [])
    with pytest.raises(ValueError, match="not finite"):
        write_gpl_training_data(tmp_path / "g.tsv", [("q0", "d0", "d1")], [float("nan")])


@pytest.mark.parametrize(
    "bad_row, message",
    [
        ("q1\td5\td6", "expected 4 tab-separated fields"),
        ("q1\td5\td6\tbig", "is not a number"),
        ("q1\td5\td6\tinf", "not finite"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, bad_row, message):
    path = tmp_path / "gpl-training-data.tsv"
    path.write_text("q0\td0\td2\t0.5\n" + bad_row + "\n")
    with pytest.raises(ValueError, match=rf"gpl-training-data.tsv:2: .*{message}"):
        read_gpl_training_data(path)
