"""Hard-negative mining: dense (embeddings and a bi-encoder), lexical, and the GPL jsonl file."""

import copy
import json

import pytest
import torch

from melscribe_torch.data import RetrievalSet
from melscribe_torch.mining import (
    mine_hard_negatives,
    mine_lexical,
    mine_with_encoder,
    read_hard_negatives,
    write_hard_negatives,
)
from melscribe_torch.models import BiEncoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The mining functions take their settings from the caller (the mining config group); the
# tests spell them out.
ENCODER_SETTINGS = {"score": "cos", "batch_size": 4, "precision": "fp32"}
TFIDF = {"method": "tfidf", "same_clip": False}


def toy_pairs() -> RetrievalSet:
    """Six requests, each with one or two relevant descriptor sets among ten."""
    corpus = {
        "d0": "rock, guitar, drums",
        "d1": "rock, guitar, loud",
        "d2": "jazz, piano, bass",
        "d3": "jazz, piano, soft",
        "d4": "calm piano, slow tempo",
        "d5": "electronic beat, fast tempo",
        "d6": "electronic, upbeat, fast",
        "d7": "sad vocal, female singer",
        "d8": "happy pop, male vocal",
        "d9": "tropical steel drums, joyful",
    }
    queries = {
        "q0": "loud rock guitar and drums",
        "q1": "a jazz piano trio",
        "q2": "fast electronic beat",
        "q3": "sad female vocal",
        "q4": "joyful tropical steel drums",
        "q5": "calm slow piano",
    }
    qrels = {
        "q0": {"d0"},
        "q1": {"d2", "d3"},
        "q2": {"d5"},
        "q3": {"d7"},
        "q4": {"d9"},
        "q5": {"d4"},
    }
    return RetrievalSet(queries=queries, corpus=corpus, qrels=qrels, name="toy")


@pytest.fixture(scope="module")
def _encoder(tiny_model_dir):
    return BiEncoder.from_pretrained(str(tiny_model_dir), device="cpu")


@pytest.fixture
def encoder(_encoder):
    return copy.deepcopy(_encoder)


def test_mined_negatives_never_hold_positives():
    torch.manual_seed(0)
    q_emb, d_emb = torch.randn(20, 8), torch.randn(50, 8)
    # Make each request's positives its nearest documents, so masking them is what matters.
    positives = [[i, (i + 7) % 50] for i in range(20)]
    for i, pos in enumerate(positives):
        d_emb[pos] = q_emb[i] * 5
    negatives = mine_hard_negatives(q_emb, d_emb, positives, k=10, score="cos")
    for row, pos in zip(negatives, positives):
        assert len(row) == 10 and not set(row) & set(pos)


@pytest.mark.parametrize("score", ["cos", "dot"])
def test_chunked_mining_equals_unchunked(score):
    torch.manual_seed(1)
    q_emb, d_emb = torch.randn(33, 16), torch.randn(211, 16)
    positives = [[i % 211, (3 * i) % 211] for i in range(33)]
    whole = mine_hard_negatives(
        q_emb, d_emb, positives, k=12, score=score, query_chunk=10_000, corpus_chunk=10_000
    )
    chunked = mine_hard_negatives(
        q_emb, d_emb, positives, k=12, score=score, query_chunk=5, corpus_chunk=17
    )
    assert chunked == whole
    # and both agree with a brute-force ranking
    scores = (
        torch.nn.functional.normalize(q_emb, dim=-1)
        @ torch.nn.functional.normalize(d_emb, dim=-1).T
    )
    if score == "dot":
        scores = q_emb @ d_emb.T
    for i, pos in enumerate(positives):
        scores[i, pos] = float("-inf")
    assert whole == torch.topk(scores, 12, dim=1).indices.tolist()


def test_k_larger_than_corpus_returns_every_non_positive():
    torch.manual_seed(2)
    negatives = mine_hard_negatives(torch.randn(3, 4), torch.randn(5, 4), [[0], [1, 2], []], k=50, score="cos")
    assert [sorted(row) for row in negatives] == [[1, 2, 3, 4], [0, 3, 4], [0, 1, 2, 3, 4]]


def test_positives_list_must_match_requests():
    with pytest.raises(ValueError, match="one list per request"):
        mine_hard_negatives(torch.randn(3, 4), torch.randn(5, 4), [[0]], k=2, score="cos")


def test_mine_with_encoder_returns_doc_ids_without_positives(encoder):
    pairs = toy_pairs()
    negatives = mine_with_encoder(encoder, pairs, **ENCODER_SETTINGS, k=4, same_clip=False)
    assert list(negatives) == list(pairs.queries)
    for qid, ids in negatives.items():
        assert len(ids) == 4 and set(ids) <= set(pairs.corpus) and not set(ids) & pairs.qrels[qid]


def test_shards_over_two_ranks_union_to_the_single_rank_result(encoder):
    pairs = toy_pairs()
    single = mine_with_encoder(encoder, pairs, **ENCODER_SETTINGS, k=3, same_clip=False)
    shards = [
        mine_with_encoder(encoder, pairs, **ENCODER_SETTINGS, k=3, same_clip=False, rank=rank, world_size=2)
        for rank in (0, 1)
    ]
    assert not set(shards[0]) & set(shards[1])
    assert {**shards[0], **shards[1]} == single
    lexical = [mine_lexical(pairs, **TFIDF, k=3, rank=rank, world_size=2) for rank in (0, 1)]
    assert {**lexical[0], **lexical[1]} == mine_lexical(pairs, **TFIDF, k=3)
    with pytest.raises(ValueError, match="rank"):
        mine_lexical(pairs, **TFIDF, k=3, rank=2, world_size=2)


def test_same_clip_positives_are_not_mined_as_negatives(encoder):
    # Two sentences of one clip's caption: each one's descriptor set describes the other's music too.
    pairs = RetrievalSet(
        queries={"clip1_0": "loud rock guitar", "clip1_1": "rock drums", "clip2_2": "jazz piano with rock guitar"},
        corpus={"d0": "rock, guitar", "d1": "rock, drums", "d2": "jazz, piano", "d3": "rock, loud"},
        qrels={"clip1_0": {"d0"}, "clip1_1": {"d1"}, "clip2_2": {"d2"}},
    )
    lexical = mine_lexical(pairs, **TFIDF, k=30)
    assert "d1" in lexical["clip1_0"]  # GPL's rule drops only the request's own positives
    for negatives in (
        mine_lexical(pairs, k=30, method="tfidf", same_clip=True),
        mine_with_encoder(encoder, pairs, **ENCODER_SETTINGS, k=30, same_clip=True),
    ):
        assert not {"d0", "d1"} & set(negatives["clip1_0"] + negatives["clip1_1"])
        assert "d3" in negatives["clip1_0"]
        assert "d0" in negatives["clip2_2"]  # other clips' positives stay fair game


@pytest.mark.parametrize("method", ["tfidf", "bm25"])
def test_lexical_mining_ranks_the_near_duplicate_first(method):
    pairs = toy_pairs()
    negatives = mine_lexical(pairs, k=30, method=method, same_clip=False)
    # d1 shares "rock" and "guitar" with q0's positive d0; d6 shares "electronic" and "fast" with q2
    assert negatives["q0"][0] == "d1"
    assert negatives["q2"][0] == "d6"
    for qid, ids in negatives.items():
        assert not set(ids) & pairs.qrels[qid]
        assert len(ids) == len(set(ids))


def test_unknown_lexical_method():
    with pytest.raises(ValueError, match="valid: tfidf, bm25"):
        mine_lexical(toy_pairs(), k=3, method="splade", same_clip=False)


def test_hard_negatives_file_round_trip(tmp_path):
    pairs = toy_pairs()
    negatives = {
        "tfidf": mine_lexical(pairs, **TFIDF, k=3),
        "bm25": mine_lexical(pairs, k=2, method="bm25", same_clip=False),
    }
    path = write_hard_negatives(tmp_path / "hard-negatives.jsonl", pairs, negatives)
    first = json.loads(path.read_text().splitlines()[1])
    assert first == {
        "qid": "q1",
        "pos": ["d2", "d3"],
        "neg": {"tfidf": negatives["tfidf"]["q1"], "bm25": negatives["bm25"]["q1"]},
    }
    records = read_hard_negatives(path)
    assert list(records) == list(pairs.queries)
    for qid, record in records.items():
        assert set(record["pos"]) == pairs.qrels[qid]
        assert record["neg"] == {name: per_request[qid] for name, per_request in negatives.items()}


def test_writing_refuses_a_missing_shard(tmp_path):
    pairs = toy_pairs()
    with pytest.raises(ValueError, match="gather every rank"):
        write_hard_negatives(
            tmp_path / "h.jsonl", pairs, {"tfidf": mine_lexical(pairs, **TFIDF, k=3, rank=0, world_size=2)}
        )


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "not valid JSON"),
        ('{"qid": "q9", "pos": ["d1"]}', "missing field"),
        ('{"qid": "q9", "pos": "d1", "neg": {}}', "'pos' must be a list"),
        ('{"qid": "q9", "pos": [], "neg": {"tfidf": [3]}}', "'neg' must map"),
        ('{"qid": "q0", "pos": [], "neg": {}}', "appears twice"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "hard-negatives.jsonl"
    path.write_text('{"qid": "q0", "pos": ["d0"], "neg": {"tfidf": ["d1"]}}\n\n' + bad_line + "\n")
    with pytest.raises(ValueError, match=rf"hard-negatives.jsonl:3: .*{message}"):
        read_hard_negatives(path)


def test_default_config_names_known_retrievers():
    from omegaconf import OmegaConf

    from melscribe_torch.conf import CONF_DIR as conf_dir
    cfg = OmegaConf.load(conf_dir / "mining" / "default.yaml")
    models = {p.stem for p in (conf_dir / "model").glob("*.yaml")}
    assert cfg.retrievers and all(
        name in models or name in ("tfidf", "bm25") for name in cfg.retrievers
    )
    assert cfg.k > 0 and cfg.score in ("cos", "dot")
    assert cfg.precision in ("fp32", "bf16", "fp16", "auto")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_mining_on_cuda_matches_cpu():
    torch.manual_seed(3)
    q_emb, d_emb = torch.randn(40, 32), torch.randn(500, 32)
    positives = [[i] for i in range(40)]
    cpu = mine_hard_negatives(q_emb, d_emb, positives, k=5, score="cos")
    cuda = mine_hard_negatives(q_emb, d_emb, positives, k=5, score="cos", device="cuda", corpus_chunk=128)
    # fp16 may swap near-ties only: the sets agree almost everywhere
    agree = sum(len(set(a) & set(b)) for a, b in zip(cpu, cuda)) / (40 * 5)
    assert agree > 0.95
