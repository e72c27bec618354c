"""The fast paths on CPU with no GPU: channels_last, bf16 autocast (and its fallback), data kept resident and
batched in chunks, the optional torch.compile switch, FastCNN's shapes and pieces, thread settings restored."""

import pytest
import torch

from classroom import models, training
from classroom import threads as cpu_threads
from classroom.config import PRESETS, TrainConfig
from classroom.data import Dataset, make_shapes
from classroom.training import BatchEnd, EpochEnd, make_optimizer, train, use_bf16

FAST = TrainConfig(model="fast-cnn", batch_size=16, epochs=1, max_steps=2, log_interval=1, device="cpu", lr=0.05)


@pytest.fixture(scope="module")
def shapes() -> Dataset:
    return make_shapes(n_train=1200, n_test=64)


def test_fast_cnn_maps_images_to_logits_with_the_documented_size():
    model = models.build("fast-cnn")
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    # trainable: three stages 48/96/192 (convs + BatchNorm biases), the whitening bias and a 10-way head
    assert models.parameter_count(model) == 655_800
    assert not model.whiten.weight.requires_grad  # frozen: computed from the data by prepare()
    assert all(not m.weight.requires_grad for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_prepare_whitens_two_by_two_patches():
    model = models.FastCNN()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 3, 32, 32, generator=g) * torch.tensor([1.0, 0.3, 2.0]).view(1, 3, 1, 1)
    x = x + x.roll(1, 2)  # correlated neighbours, unequal channel scales: far from white
    model.prepare(x)
    f = (model.whiten(x)[:, :12] - model.whiten.bias[:12].view(1, -1, 1, 1)).permute(0, 2, 3, 1).reshape(-1, 12)
    f = f - f.mean(0)
    cov = f.T @ f / len(f)
    assert torch.allclose(cov, torch.eye(12), atol=0.02)


def test_norm_biases_get_a_boosted_learning_rate_and_frozen_weights_none():
    model = models.build("fast-cnn")
    optimizer = make_optimizer(FAST, model)
    boosted = [g for g in optimizer.param_groups if g["lr_scale"] == 64.0]
    assert boosted and boosted[0]["lr"] == pytest.approx(64 * FAST.lr)
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert id(model.whiten.weight) not in in_optimizer
    assert all(p.requires_grad for g in optimizer.param_groups for p in g["params"])


def test_every_step_gives_each_parameter_group_the_schedules_rate_times_its_scale(monkeypatch, shapes):
    made = []  # the optimizer the run builds, seen as the loop left it after each step
    def spy(config, model, **options):
        made.append(make_optimizer(config, model, **options))
        return made[-1]

    monkeypatch.setattr(training, "make_optimizer", spy)
    config = FAST.replace(epochs=2, max_steps=3, schedule="onecycle", warmup=0.4)
    rates = []  # (step, [(lr, lr_scale) of each group]) as each step left them

    def on_event(event):
        if isinstance(event, BatchEnd):
            rates.append((event.global_step - 1, [(g["lr"], g["lr_scale"]) for g in made[0].param_groups]))

    train(config, shapes, on_event=on_event)
    assert [step for step, _ in rates] == list(range(6)) and {scale for _, groups in rates for _, scale in groups} == {1.0, 64.0}
    for step, groups in rates:
        for lr, scale in groups:
            assert lr == pytest.approx(training.learning_rate(config, step, 6) * scale)


def test_whitening_bias_trains_at_the_plain_rate_for_the_first_third_of_the_epochs(shapes):
    model = models.build("fast-cnn")
    plain = [g for g in make_optimizer(FAST, model).param_groups if g["lr_scale"] == 1.0]
    assert any(p is model.whiten.bias for g in plain for p in g["params"])  # not among the boosted norm biases
    trains = []
    for epoch in range(1, 7):
        model.start_epoch(epoch, 6)
        trains.append(model.whiten.bias.requires_grad)
    assert trains == [True, True, False, False, False, False]
    result = train(FAST.replace(epochs=3), shapes)
    bias = result.model.whiten.bias
    assert not bias.requires_grad and bias.abs().sum() > 0  # trained in epoch 1, frozen since


def test_channels_last_and_bf16_autocast_train_on_cpu(shapes):
    config = FAST.replace(precision="bf16", channels_last=True, augment=True, tta=True)
    events = []
    result = train(config, shapes, on_event=events.append)
    assert result.status == "finished", result.message
    conv = result.model.stages[0].conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert conv.dtype == torch.float32  # autocast: weights stay fp32, the matmuls run in bf16
    losses = [e.loss for e in events if isinstance(e, BatchEnd)]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))


def test_auto_precision_falls_back_to_fp32_on_a_cpu_without_bf16(monkeypatch, shapes):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not use_bf16("auto", torch.device("cpu"))
    asked, real = [], training.autocast
    monkeypatch.setattr(training, "autocast", lambda device, bf16: asked.append(bf16) or real(device, bf16))
    result = train(FAST.replace(precision="auto"), shapes)
    assert result.status == "finished" and asked == [False, False]


def test_auto_precision_uses_bf16_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert use_bf16("auto", torch.device("cpu"))


def test_auto_precision_uses_bf16_only_on_a_gpu_that_computes_it_natively(monkeypatch):
    # GPU 0 a T4 (7.5: bf16 emulated, which is_bf16_supported() counts), GPU 1 an A100 (8.0); the current GPU is 0
    capability = {0: (7, 5), 1: (8, 0)}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability[_index(device)])
    assert not use_bf16("auto", torch.device("cuda:0")) and not use_bf16("auto", torch.device("cuda"))
    assert use_bf16("auto", torch.device("cuda:1"))
    assert use_bf16("bf16", torch.device("cuda:0")) and not use_bf16("fp32", torch.device("cuda:1"))


def _index(device) -> int:
    """The GPU a device names: its index, or the current GPU for plain "cuda" or none."""
    index = None if device is None else torch.device(device).index
    return torch.cuda.current_device() if index is None else index


def test_batches_are_views_into_one_normalised_chunk():
    x = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(40)
    index = torch.randperm(40)
    config = TrainConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    xc, yc = training._chunk(config, x, y, index, torch.channels_last, None)
    assert xc.is_contiguous(memory_format=torch.channels_last) and xc.dtype == torch.float32
    assert torch.equal(yc, y[index])
    assert torch.allclose(xc, x[index].float() / 127.5 - 1, atol=1e-6)  # ToTensor + Normalize(0.5, 0.5)
    assert xc[8:16].is_contiguous(memory_format=torch.channels_last)  # a batch slice stays a fast view


def test_per_step_results_reduced_in_bulk_match_the_epoch_summary(shapes):
    # 1200 images / batch 4 = 300 steps: past the 256-step flush, with one report at the end of the epoch
    events = []
    config = TrainConfig(batch_size=4, epochs=1, log_interval=1000, device="cpu", threads=1)
    train(config, shapes, on_event=events.append)
    batch = [e for e in events if isinstance(e, BatchEnd)]
    epoch = [e for e in events if isinstance(e, EpochEnd)][0]
    assert len(batch) == 1 and batch[0].step == 300
    assert batch[0].loss == pytest.approx(epoch.train_loss, rel=1e-5)  # equal batches: same mean both ways
    assert (epoch.train_accuracy * 1200) == pytest.approx(round(epoch.train_accuracy * 1200))  # a count over all 1200


def test_a_run_trains_on_its_thread_count_and_leaves_the_process_default(shapes):
    torch.set_num_threads(cpu_threads.DEFAULT + 2)  # what other work left in this thread: not what the run leaves behind
    seen = []
    config = PRESETS["tutorial"].replace(max_steps=2, epochs=1, log_interval=1, device="cpu")
    train(config, shapes, on_event=lambda event: seen.append(torch.get_num_threads()))
    assert PRESETS["tutorial"].threads == 1 and seen == [1, 1, 1, 1]  # two batches, the epoch, the end
    assert torch.get_num_threads() == cpu_threads.DEFAULT


def test_compile_switch_trains_a_compiled_step_and_keeps_plain_weights(monkeypatch, shapes):
    compiled = []

    def fake_compile(model):  # inductor needs tens of seconds; the wiring is what is tested here
        def forward(x):
            compiled.append(len(x))
            return model(x)

        return forward

    monkeypatch.setattr(torch, "compile", fake_compile)
    result = train(FAST.replace(compile=True), shapes)
    assert compiled == [16, 16]  # the two training steps went through the compiled callable
    assert isinstance(result.model, models.FastCNN)
    assert not any(k.startswith("_orig_mod") for k in result.model.state_dict())
