"""The recommender's and select-weight's defaults are the packaged YAML's, read, never copied.

Rerank depth: the rerank config group (melscribe-evaluate's rerank.depth too); approximate
search: recommend.yaml's ``ann``; select-weight's grid and split: recommend.yaml's
``select_weight`` with train.py's validation settings (train.yaml's data).
"""

import inspect

from hydra import compose, initialize_config_dir

from melscribe_torch.conf import CONF_DIR, read_config, read_option
from melscribe_torch.recommend import Recommender
from melscribe_torch.recommend.cli import build_parser
from melscribe_torch.recommend.faiss_index import build_faiss_index, ivf_lists
from melscribe_torch.recommend.select_weight import select_fusion_weight


def defaults(function) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def test_the_rerank_depth_is_the_rerank_groups_for_evaluate_the_recommender_and_the_cli():
    depth = read_option("rerank")["depth"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        assert compose(config_name="evaluate").rerank.depth == depth
        assert compose(config_name="evaluate", overrides=["rerank.depth=7"]).rerank.depth == 7
    assert defaults(Recommender)["rerank_depth"] == depth
    query = build_parser().parse_args(["query", "--index", "idx", "calm piano"])
    assert query.rerank_depth == depth
    # the ensemble reranker's members: the ensemble group's (weights 0: the cross-encoder alone)
    ensemble = read_option("ensemble")
    members = (query.rerank_dense_weight, query.rerank_tfidf_weight, query.rerank_max_ngram)
    assert members == (ensemble["dense_weight"], ensemble["tfidf_weight"], ensemble["max_ngram"])


def test_approximate_search_defaults_are_the_recommend_groups_ann_block():
    ann = read_config("recommend")["ann"]
    assert defaults(build_faiss_index) == {
        "kind": "flat",
        "hnsw_m": ann["hnsw_m"],
        "ef_construction": ann["hnsw_ef_construction"],
        "ef_search": ann["hnsw_ef_search"],
        "nlist": None,
        "nprobe": ann["ivf_nprobe"],
        "train": None,
    }
    assert {k: defaults(Recommender)[k] for k in ("ef_search", "nprobe")} == {
        "ef_search": ann["hnsw_ef_search"],
        "nprobe": ann["ivf_nprobe"],
    }
    serve = build_parser().parse_args(["serve", "--index", "idx"])
    assert (serve.ef_search, serve.nprobe) == (ann["hnsw_ef_search"], ann["ivf_nprobe"])
    assert ivf_lists(1_000_000) == round(ann["ivf_lists_per_sqrt"] * 1000)


def test_select_weight_searches_the_yaml_grid_on_train_pys_validation_settings():
    select, data = read_config("recommend")["select_weight"], read_config("train")["data"]
    found = defaults(select_fusion_weight)
    assert list(found["alphas"]) == select["alphas"]
    assert list(found["max_ngrams"]) == select["max_ngrams"]
    assert found["metric"] == select["metric"]
    assert found["valid_fraction"] == select["valid_fraction"]
    assert list(found["seeds"]) == data["valid_seeds"]
    assert found["split_seed"] == data["split_seed"]
    assert found["method"] == read_option("hybrid")["method"]
    args = build_parser().parse_args(["select-weight", "--data-root", "data"])
    assert args.max_ngrams == select["max_ngrams"]
    assert str(select["valid_fraction"]) in build_parser()._subparsers._group_actions[0].choices[
        "select-weight"
    ].format_help()
