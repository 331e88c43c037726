"""The hybrid's tuned settings are written once, in the hybrid config group, and every user reads them."""

import inspect

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from melscribe_torch.conf import CONF_DIR, read_option
from melscribe_torch.recommend import Recommender
from melscribe_torch.recommend.cli import build_parser
from melscribe_torch.recommend.select_weight import select_fusion_weight


def test_evaluate_the_recommender_and_the_cli_share_the_hybrid_group():
    tuned = read_option("hybrid")
    assert set(tuned) == {"alpha", "method", "max_ngram"}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="evaluate")
        overridden = compose(config_name="evaluate", overrides=["hybrid.alpha=0.25"])
    assert OmegaConf.to_container(cfg.hybrid) == tuned
    assert overridden.hybrid.alpha == 0.25  # still set from the command line
    params = inspect.signature(Recommender).parameters
    assert {key: params[key].default for key in tuned} == tuned
    query = build_parser().parse_args(["query", "--index", "idx", "calm piano"])
    assert {key: getattr(query, key) for key in tuned} == tuned
    select = build_parser().parse_args(["select-weight", "--data-root", "data"])
    assert select.method == inspect.signature(select_fusion_weight).parameters["method"].default == tuned["method"]
