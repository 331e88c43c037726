import pytest
from recommend_fakes import KeywordEncoder

from melscribe_torch.recommend import select_weight
from melscribe_torch.recommend.select_weight import format_selection, select_fusion_weight

ENCODE = {"batch_size": 64, "precision": "fp32"}  # melscribe-recommend select-weight --batch-size, --precision


def test_format_selection_marks_the_choice():
    result = {
        "alpha": 0.5,
        "max_ngram": 2,
        "metric": "recall@10",
        "table": [
            {"max_ngram": 1, "alpha": 0.5, "mean": 0.5, "std": 0.01, "per_seed": [0.49, 0.51]},
            {"max_ngram": 2, "alpha": 0.5, "mean": 0.6, "std": 0.0, "per_seed": [0.6, 0.6]},
        ],
    }
    lines = format_selection(result).splitlines()
    assert lines[0] == "| alpha | recall@10, n-grams 1-1 (%) | recall@10, n-grams 1-2 (%) |"
    assert lines[2] == "| 0.5 | 50.0 ± 1.0 | **60.0 ± 0.0** chosen |"


@pytest.mark.data
def test_validation_grid_on_training_clips(data_root):
    """alpha=0 is TF-IDF alone: its validation recall must match the TF-IDF retriever's."""
    from melscribe_torch.data import held_out_clip_ids
    from melscribe_torch.data.training import build_validation_set, load_training_records, split_for_validation
    from melscribe_torch.evaluation import evaluate_retrieval_set
    from melscribe_torch.retrieval import TfidfRetriever

    result = select_fusion_weight(
        KeywordEncoder(), data_root, **ENCODE, alphas=(0.0, 1.0), seeds=(0,), max_ngrams=(1, 2)
    )
    cells = [(row["max_ngram"], row["alpha"]) for row in result["table"]]
    assert cells == [(1, 0.0), (1, 1.0), (2, 0.0), (2, 1.0)]
    best = max(result["table"], key=lambda r: r["mean"])
    assert (result["max_ngram"], result["alpha"]) == (best["max_ngram"], best["alpha"])
    # alpha=1 is the dense side alone, whatever the TF-IDF side
    assert result["table"][1]["per_seed"] == result["table"][3]["per_seed"]
    # select-weight's split (the recommend and data config groups'), whatever else is loaded
    _, valid = split_for_validation(
        load_training_records(data_root, ["musiccaps", "lp-musiccaps-mc", "conceptcaps"]),
        select_weight.DEFAULT_VALID_FRACTION,
        select_weight.DEFAULT_SPLIT_SEED,
        select_weight.VALID_REQUEST_SOURCES,
        select_weight.VALID_LAYOUT,
    )
    assert not {r.clip_id for r in valid} & held_out_clip_ids(data_root)  # never a test clip
    validation_set = build_validation_set(valid, 0, select_weight.VALID_REQUEST_SOURCES, select_weight.VALID_LAYOUT)
    tfidf = evaluate_retrieval_set(TfidfRetriever(), validation_set, [10])["recall@10"]
    assert result["table"][0]["mean"] == pytest.approx(tfidf, abs=0.01)
    assert result["num_requests"][0] > 100


@pytest.mark.data
def test_a_model_trained_on_validation_clips_is_refused(data_root):
    from melscribe_torch.data.training import load_training_records

    every_clip = {r.clip_id for r in load_training_records(data_root, ["musiccaps"])}
    with pytest.raises(ValueError, match=r"trained on \d+ of the \d+ validation clips"):
        select_fusion_weight(KeywordEncoder(), data_root, **ENCODE, seeds=(0,), trained_clips=every_clip)
