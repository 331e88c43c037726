"""Mined negatives that describe their request: found, dropped, and replaced by the next ones."""

from training_fixtures import composed_settings

from melscribe_torch.data import RetrievalSet
from melscribe_torch.data.descriptors import describes
from melscribe_torch.mining import drop_described, mine_lexical, read_hard_negatives
from melscribe_torch.pipeline import mine


def test_a_set_describes_a_request_when_every_descriptor_occurs_in_it():
    request = "There are no voices in this song, only a Rock guitar"
    assert describes("no voices", request)
    assert describes("rock guitar, no voices", request)  # case does not matter: "Rock" opens a phrase
    assert not describes("no voices, piano", request)  # one descriptor the request never names
    assert not describes("male vocal", request)


def two_clips() -> RetrievalSet:
    """Clip 1's request names "no voices"; clip 2's sets hold it too, alone and with more."""
    return RetrievalSet(
        queries={"clip1_0": "there are no voices, just a calm piano"},
        corpus={
            "d0": "calm piano",  # clip 1's positive
            "d1": "no voices",  # clip 2: described by clip 1's request
            "d2": "calm piano, no voices",  # clip 2: described as well
            "d3": "no voices, drums",
            "d4": "piano, loud",
            "d5": "rock",
        },
        qrels={"clip1_0": {"d0"}},
    )


def test_described_negatives_are_dropped_and_the_next_ones_move_up():
    pairs = two_clips()
    kept, dropped = drop_described({"clip1_0": ["d1", "d3", "d2", "d4", "d5"]}, pairs, k=2)
    assert kept == {"clip1_0": ["d3", "d4"]}
    assert dropped == 1  # only d1 was among the first k = 2; d2 would not have been kept anyway


def test_mining_with_exclude_described_keeps_only_undescribed_negatives(tmp_path):
    pairs = two_clips()
    plain = mine_lexical(pairs, k=3, method="tfidf", same_clip=False)["clip1_0"]
    assert {"d1", "d2"} & set(plain)  # TF-IDF ranks the described sets high

    settings = composed_settings(
        "mining.retrievers=[tfidf]", "mining.k=3", "mining.exclude_described=true"
    ).mining
    path = tmp_path / "hard-negatives.jsonl"
    mine(path, pairs, settings, aliases={}, rank=0, world_size=1)
    negatives = read_hard_negatives(path)["clip1_0"]["neg"]["tfidf"]
    assert len(negatives) <= 3
    assert not any(describes(pairs.corpus[d], pairs.queries["clip1_0"]) for d in negatives)
    assert negatives == ["d3", "d4"]  # each adds what the request never names ("drums", "loud")

