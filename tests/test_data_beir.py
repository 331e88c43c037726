import pytest

from melscribe_torch.data import DataError, RetrievalSet, read_beir, write_beir


def test_round_trip(tmp_path):
    rs = RetrievalSet(
        queries={"q1": "calm piano", "q2": "loud rock"},
        corpus={"d0": "piano, calm", "d1": "rock"},
        qrels={"q1": {"d0"}, "q2": {"d1"}},
    )
    write_beir(rs, tmp_path, split="test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.jsonl", "qrels", "queries.jsonl"]
    back = read_beir(tmp_path, split="test")
    assert (back.queries, back.corpus, back.qrels) == (rs.queries, rs.corpus, rs.qrels)


def test_gpl_file_names(tmp_path):
    rs = RetrievalSet(queries={"q": "x"}, corpus={"d": "y"}, qrels={"q": {"d"}})
    write_beir(rs, tmp_path, split="train", queries_file="qgen-queries.jsonl", qrels_dir="qgen-qrels")
    assert (tmp_path / "qgen-qrels" / "train.tsv").read_text().splitlines() == ["query-id\tcorpus-id\tscore", "q\td\t1"]
    assert read_beir(tmp_path, "train", "qgen-queries.jsonl", "qgen-qrels").qrels == {"q": {"d"}}


def test_bad_json_line_is_named(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d", "text": "y"}\nnot json\n')
    with pytest.raises(DataError, match=r"corpus\.jsonl, line 2: not valid JSON"):
        read_beir(tmp_path)


@pytest.mark.parametrize("line", ["5", '["d", "y"]', '"text"'])
def test_a_line_that_is_not_an_object_is_named(tmp_path, line):
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d", "text": "y"}\n' + line + "\n")
    with pytest.raises(DataError, match=r"corpus\.jsonl, line 2: expected a JSON object"):
        read_beir(tmp_path)


def test_qrels_pointing_outside_corpus(tmp_path):
    rs = RetrievalSet(queries={"q": "x"}, corpus={"d": "y"}, qrels={"q": {"d"}})
    write_beir(rs, tmp_path)
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\tmissing\t1\n")
    with pytest.raises(DataError, match="not in corpus"):
        read_beir(tmp_path)
