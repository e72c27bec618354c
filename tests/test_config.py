"""TrainConfig validation and presets."""

import dataclasses

import pytest

from classroom.config import PRESETS, ConfigError, TrainConfig, preset

# The PyTorch CIFAR-10 tutorial's settings: Net, SGD(lr=0.001, momentum=0.9), batch 4, 2 epochs, shuffled,
# Normalize((0.5,) * 3, (0.5,) * 3), plain CrossEntropyLoss, fp32, a loss line every 2000 mini-batches.
TUTORIAL = dict(
    model="net", epochs=2, batch_size=4, lr=0.001, momentum=0.9, optimizer="sgd", weight_decay=0.0,
    schedule="constant", warmup=0.0, label_smoothing=0.0, augment=False, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    precision="fp32", channels_last=False, compile=False, tta=False, log_interval=2000, max_steps=0, minutes=0.0,
)  # fmt: skip
# Fields that change no number the tutorial computes: the seed (it sets none), where it runs, on how many threads,
# which data (CIFAR-10 is one choice), the run's label, the crop padding (used only when augmenting), and whether a
# GPU replays the step as a CUDA graph (the same step, launched at once).
NOT_THE_RECIPE = {"seed", "device", "threads", "data", "data_dir", "name", "translate", "cuda_graph"}


def test_tutorial_preset_is_the_tutorial_field_by_field():
    c = preset("tutorial")
    assert {name: getattr(c, name) for name in TUTORIAL} == TUTORIAL
    assert {f.name for f in dataclasses.fields(TrainConfig)} == set(TUTORIAL) | NOT_THE_RECIPE  # a new field goes in one
    assert c.threads == 1  # one thread: faster at batch 4, the same numbers


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


def test_a_learning_rate_is_carried_to_another_batch_linearly_for_sgd_and_by_the_root_for_adam():
    from classroom.config import MAX_LR, lr_for_batch

    assert lr_for_batch(0.001, 4, 64) == 0.016  # the tutorial's rate at batch 64 (issue 13)
    assert lr_for_batch(0.001, 4, 64, "nesterov") == 0.016
    assert lr_for_batch(0.008, 128, 512, "adam") == 0.016 and lr_for_batch(0.008, 128, 32, "adamw") == 0.004
    assert lr_for_batch(1.0, 4, 4096) == MAX_LR  # never past what validate() accepts
