"""TrainConfig validation and presets."""

import pytest

from classroom.config import PRESETS, ConfigError, TrainConfig, preset


def test_tutorial_preset_is_the_tutorial():
    c = preset("tutorial")
    assert (c.model, c.optimizer, c.lr, c.momentum, c.batch_size, c.epochs) == ("net", "sgd", 0.001, 0.9, 4, 2)
    assert c.mean == (0.5, 0.5, 0.5) and c.std == (0.5, 0.5, 0.5)
    assert not c.augment and c.weight_decay == 0 and c.schedule == "constant" and c.label_smoothing == 0


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"lr": 1e6}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"epochs": 10_000}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"model": "resnet9000"}, "model"),
        ({"device": "tpu"}, "device"),
        ({"device": "cuda:x"}, "device"),
        ({"data": "imagenet"}, "data"),
        ({"data": "folder:"}, "data"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"momentum": 1.5}, "momentum"),
        ({"std": (0.5, 0.0, 0.5)}, "std"),
        ({"seed": -3}, "seed"),
    ],
)
def test_impossible_values_are_refused_naming_the_field(changes, field):
    with pytest.raises(ConfigError, match=rf"^{field}:"):
        TrainConfig().replace(**changes)


def test_unknown_preset_is_named():
    with pytest.raises(ConfigError, match="preset: unknown preset 'nope'"):
        preset("nope")


def test_every_preset_is_valid_and_round_trips_through_json_dict():
    for name, config in PRESETS.items():
        config.validate()
        assert TrainConfig.from_dict(config.to_dict()) == config, name


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(ConfigError, match="^evil: not a TrainConfig field"):
        TrainConfig.from_dict({"evil": "__import__('os')"})


def test_a_run_name_must_be_visible_text():
    visible = "![x](http://127.0.0.1:9/t.png) :red[r] :material/home: $x$ <b>b</b> 飛行機 ✓"
    assert TrainConfig(name=visible).validate().name == visible  # shown escaped, never refused for what it says
    for hidden in ("\u202e", "\u2066", "\u200b", "\u200e", "\n", "\t", "\x07", "\u2028"):
        with pytest.raises(ConfigError, match=r"^name: .*found U\+"):
            TrainConfig(name=f"a{hidden}b").validate()
