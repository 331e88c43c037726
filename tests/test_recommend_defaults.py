"""The recommender's and select-weight's defaults are the packaged YAML's, read, never copied.

Rerank depth: the rerank config group (melscribe-evaluate's rerank.depth too); building an
index, answering requests and serving them: recommend.yaml's ``index``, ``query`` and
``serve``; approximate search: recommend.yaml's ``ann``; select-weight's grid and split:
recommend.yaml's ``select_weight`` with train.py's validation settings (train.yaml's data).
"""

import inspect

from hydra import compose, initialize_config_dir

from melscribe_torch.conf import CONF_DIR, read_config, read_option
from melscribe_torch.recommend import Recommender
from melscribe_torch.recommend.cli import build_parser
from melscribe_torch.recommend.faiss_index import build_faiss_index, ivf_lists
from melscribe_torch.recommend.index_write import _write_index
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


def test_an_index_is_built_with_the_index_block_from_the_cli_and_the_api():
    index = read_config("recommend")["index"]
    args = build_parser().parse_args(["index", "--catalog", "songs.csv", "--out", "idx"])
    from_cli = {k: getattr(args, k) for k in ("model", "dtype", "score", "batch_size", "precision")}
    assert from_cli == index
    api = defaults(_write_index)
    assert {k: api[k] for k in ("dtype", "score", "batch_size", "precision")} == {
        k: index[k] for k in ("dtype", "score", "batch_size", "precision")
    }
    # select-weight encodes the validation sets the same way
    select = build_parser().parse_args(["select-weight", "--data-root", "data"])
    assert (select.model, select.batch_size, select.precision) == (
        index["model"],
        index["batch_size"],
        index["precision"],
    )


def test_requests_are_answered_with_the_query_block_by_the_cli_the_server_and_the_api():
    query = read_config("recommend")["query"]
    api = defaults(Recommender)
    assert {k: api[k] for k in ("backend", "explain_top", "batch_size", "precision")} == {
        k: query[k] for k in ("backend", "explain_top", "batch_size", "precision")
    }
    for method in (Recommender.recommend, Recommender.recommend_batch):
        assert (defaults(method)["k"], defaults(method)["retriever"]) == (query["k"], query["retriever"])
    cli = build_parser().parse_args(["query", "--index", "idx", "calm piano"])
    assert (cli.k, cli.retriever, cli.backend, cli.explain_top) == (
        query["k"],
        query["retriever"],
        query["backend"],
        query["explain_top"],
    )
    serve = build_parser().parse_args(["serve", "--index", "idx"])
    assert (serve.retriever, serve.precision) == (query["retriever"], query["precision"])
    from melscribe_torch.serve.app import RecommendBody  # needs the serve extra, as CI installs

    assert RecommendBody(request="calm piano").k == query["k"]


def test_the_server_reads_its_limits_and_batching_from_the_serve_block():
    serve = read_config("recommend")["serve"]
    args = vars(build_parser().parse_args(["serve", "--index", "idx"]))
    assert {k: args[k] for k in serve} == serve


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
