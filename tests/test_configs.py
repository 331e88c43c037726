"""Every config composes, and the settings built from it hold exactly the YAML's values."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from omegaconf import OmegaConf
from training_fixtures import CONF_DIR, compose_train

from hydra.utils import get_class

from melscribe_torch.losses import build_loss
from melscribe_torch.training.run_guard import flatten
from melscribe_torch.settings import GROUPS, ModelSettings, section_settings, settings_from_config

GROUP_FILES = [
    (group, path.stem) for group in GROUPS for path in sorted((CONF_DIR / group).glob("*.yaml"))
]
PRESETS = [p.stem for p in sorted((CONF_DIR / "experiment").glob("*.yaml"))]
LOSSES = [p.stem for p in sorted((CONF_DIR / "loss").glob("*.yaml"))]


def written_values(path):
    """The values a YAML file writes itself (its defaults list and interpolations left out)."""
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    return {
        key: value
        for key, value in OmegaConf.to_container(node, resolve=False).items()
        if not (isinstance(value, str) and value.startswith("${"))
    }


def built_values(settings, group):
    value = getattr(settings, group)
    return value if isinstance(value, dict) else dataclasses.asdict(value)


def assert_holds(built, written, where):
    """Every value ``written`` (nested) is the one ``built`` holds."""
    for key, value in written.items():
        if isinstance(value, dict):
            assert_holds(built[key], value, f"{where}.{key}")
        elif not (isinstance(value, str) and value.startswith("${")):
            assert built[key] == value, f"{where}.{key}"


def assert_settings_hold(cfg, settings):
    for group in [*GROUPS, "loss"]:
        expected = OmegaConf.to_container(cfg[group], resolve=True)
        assert built_values(settings, group) == expected, group
    assert settings.seed == cfg.seed
    assert_loss_holds(cfg.loss, build_loss(settings.loss))


def assert_loss_holds(node, loss):
    """The loss built from a ``loss`` node: its components, classes, weights and options."""
    assert list(loss.components) == [name for name in node if node[name].weight > 0]
    for name, component in loss.components.items():
        spec = OmegaConf.to_container(node[name], resolve=True)
        assert type(component) is get_class(spec.pop("_target_")), name
        assert loss.weights[name] == spec.pop("weight"), name
        for option, value in spec.items():
            assert getattr(component, option) == value, f"loss.{name}.{option}"


@pytest.mark.parametrize("group", list(GROUPS))
def test_settings_have_no_defaults_of_their_own(group):
    for field in dataclasses.fields(GROUPS[group]):
        assert field.default is dataclasses.MISSING, f"{group}.{field.name}"
        assert field.default_factory is dataclasses.MISSING, f"{group}.{field.name}"


@pytest.mark.parametrize(("group", "option"), GROUP_FILES)
def test_every_group_file_builds_settings_holding_its_values(group, option):
    cfg = compose_train([f"{group}={option}", "data.root=somewhere"])
    settings = settings_from_config(cfg)
    assert_settings_hold(cfg, settings)
    assert_holds(built_values(settings, group), written_values(CONF_DIR / group / f"{option}.yaml"), group)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_file_builds_the_components_it_names(loss):
    cfg = compose_train([f"loss={loss}", "data.root=somewhere"])
    settings = settings_from_config(cfg)
    assert_settings_hold(cfg, settings)
    assert_holds(settings.loss, written_values(CONF_DIR / "loss" / f"{loss}.yaml"), "loss")


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composed_onto_train_builds_settings_holding_its_values(preset):
    cfg = compose_train([f"+experiment={preset}", "data.root=somewhere"])
    settings = settings_from_config(cfg)
    assert_settings_hold(cfg, settings)
    for group, values in written_values(CONF_DIR / "experiment" / f"{preset}.yaml").items():
        assert_holds(built_values(settings, group), values, f"experiment/{preset}.yaml: {group}")


def test_train_yaml_values_reach_the_settings():
    settings = settings_from_config(compose_train(["data.root=somewhere"]))
    for group, values in written_values(CONF_DIR / "train.yaml").items():
        if group in GROUPS:
            assert_holds(built_values(settings, group), values, group)
    assert settings.data.root == "somewhere"


def test_a_missing_or_unknown_key_names_the_group_and_key():
    values = {"name_or_path": "m", "pooling": "mean", "max_length": 8, "normalize": None}
    assert section_settings(ModelSettings, values, "model").max_length == 8
    with pytest.raises(ValueError, match=r"missing model\.pooling"):
        section_settings(ModelSettings, {k: v for k, v in values.items() if k != "pooling"}, "model")
    with pytest.raises(ValueError, match=r"unknown model\.pooling_mode"):
        section_settings(ModelSettings, {**values, "pooling_mode": "cls"}, "model")


def test_paper_preset_is_the_papers_recipe():
    cfg = compose_train(["+experiment=paper", "data.root=x"])
    assert (cfg.train.steps, cfg.train.batch_size, cfg.mining.k) == (140000, 4, 30)
    assert len(cfg.mining.retrievers) == 2 and list(cfg.loss) == ["margin_mse"]
    assert cfg.loss.margin_mse.similarity == "cos"
    assert cfg.train.dropout is None  # the backbone's own
    assert cfg.optim.lr == 2e-5  # GPL's


def test_a_preset_keeps_the_users_model_choice():
    chosen = compose_train(["model=bert-base", "data.root=x"]).model
    with_preset = compose_train(["model=bert-base", "+experiment=paper", "data.root=x"]).model
    assert with_preset.name_or_path == chosen.name_or_path == "bert-base-uncased"


def test_presets_open_with_their_command():
    for path in (CONF_DIR / "experiment").glob("*.yaml"):
        # Hydra reads the package header only on the first line; the command comes right after.
        command = path.read_text().splitlines()[1]
        assert command.startswith(
            (f"# melscribe-train +experiment={path.stem}", f"# python train.py +experiment={path.stem}")
        ), path


def named_by(preset: str) -> tuple[set[str], tuple[str, ...]]:
    """The keys a preset's YAML names, and the groups it swaps whole ("override /loss: ...");
    a preset it builds on (a plain entry of its defaults, e.g. "zero-shot") names its own."""
    text = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "experiment" / f"{preset}.yaml"))
    named, swapped = set(), ()
    for entry in text.pop("defaults", []):
        if isinstance(entry, dict):
            swapped += (next(iter(entry)).split("/")[-1] + ".",)
        elif entry != "_self_":
            inherited, inherited_swaps = named_by(entry)
            named, swapped = named | inherited, swapped + inherited_swaps
    return named | set(flatten(text)), swapped


@pytest.mark.parametrize(
    "preset", [p.stem for p in sorted((CONF_DIR / "experiment").glob("*.yaml"))]
)
def test_a_preset_changes_only_the_values_it_names(preset):
    """Everything a preset does not name stays the default (or the user's choice)."""
    plain = flatten(OmegaConf.to_container(compose_train(["data.root=x"])))
    composed = flatten(OmegaConf.to_container(compose_train([f"+experiment={preset}", "data.root=x"])))
    named, swapped = named_by(preset)
    changed = {key for key in plain.keys() | composed.keys() if plain.get(key) != composed.get(key)}
    assert changed, f"{preset} changes nothing"
    unnamed = {key for key in changed - named if not key.startswith(swapped)}
    assert not unnamed, f"{preset} changes values it does not name: {sorted(unnamed)}"


def config_parameters():
    """Functions the drivers hand config values to, and those parameters (YAML key in the comment)."""
    from melscribe_torch.data.request_style import RequestRewriter
    from melscribe_torch.data.test_sets import custom_test_set
    from melscribe_torch.data.training import build_training_pairs, build_validation_set
    from melscribe_torch.evaluation import build_retriever, evaluate_over_seeds
    from melscribe_torch.mining import mine_hard_negatives, mine_lexical, mine_with_encoder
    from melscribe_torch.training.validation import validation_metrics, validation_recall

    return {
        mine_with_encoder: ("k", "score", "batch_size", "precision", "same_clip"),  # mining.*
        mine_lexical: ("k", "method", "same_clip"),  # mining.k, mining.retrievers, mining.exclude_same_clip
        mine_hard_negatives: ("k", "score"),
        build_training_pairs: ("seed", "docs_per_query"),  # data.pair_seed, data.docs_per_query
        build_validation_set: ("request_sources", "layout"),  # data.valid_request_sources, data.valid_layout
        # data.omit_descriptor_fraction, data.request_style_fraction, data.pair_seed
        RequestRewriter: ("omit_fraction", "restyle_fraction", "seed"),
        build_retriever: ("score", "batch_size", "precision"),  # evaluate: score, encode.*
        evaluate_over_seeds: ("seeds", "k_values"),  # evaluate: seeds, k_values
        custom_test_set: ("sampling",),  # evaluate: custom.sampling
        validation_metrics: ("batch_size", "precision"),  # train.encode_batch_size, train.precision
        validation_recall: ("batch_size", "precision"),
    }


def test_functions_given_config_values_have_no_defaults_of_their_own():
    # A default here would be a second copy of the YAML's value, free to drift from it.
    with_default = [
        f"{function.__module__}.{function.__name__}({name}=...)"
        for function, names in config_parameters().items()
        for name in names
        if inspect.signature(function).parameters[name].default is not inspect.Parameter.empty
    ]
    assert with_default == []
