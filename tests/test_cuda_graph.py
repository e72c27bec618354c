"""The CUDA-graph step, built and tested on a CPU: a stub stands in for torch.cuda's streams and graphs."""

import contextlib

import pytest
import torch

from classroom import data, training
from classroom.__main__ import main
from classroom.config import TrainConfig
from classroom.data import make_shapes
from classroom.training import BatchEnd, GraphedStep, RunEnd, train

# Nesterov SGD with a onecycle schedule (the rate is a device tensor the graph reads), and 1200 images in batches of
# 32: 37 full batches and a short one per epoch, which runs eagerly.
GRAPHED = TrainConfig(
    model="net", batch_size=32, lr=0.05, optimizer="nesterov", schedule="onecycle", warmup=0.2, epochs=2,
    log_interval=5, device="cpu", threads=1, cuda_graph=True,
)  # fmt: skip


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n_train=1200, n_test=300)


class StubGraph:
    """A captured step: on a GPU its kernels, here the Python body, rerun on replay into the same output tensors."""

    def __init__(self, owner, body, outputs):
        self.owner, self.body, self.outputs = owner, body, outputs
        self.captured_batch_done = True

    def replay(self):
        self.owner.replays += 1
        if self.captured_batch_done:  # a CPU ran the body while "capturing": that batch's step is done already
            self.captured_batch_done = False
            return
        for static, new in zip(self.outputs, self.body()):
            static.detach().copy_(new.detach())  # a replay writes its results into the captured outputs


class StubGraphs:
    """torch.cuda's side stream and graph capture, on a CPU, counting what the graphed step asked for."""

    def __init__(self, fail: bool = False):
        self.fail, self.captures, self.replays, self.side_steps = fail, 0, 0, 0

    def available(self, device):
        return True

    @contextlib.contextmanager
    def side_stream(self, device):
        self.side_steps += 1
        yield

    def capture(self, body):
        self.captures += 1
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        outputs = body()
        return StubGraph(self, body, outputs), outputs


def run(config, dataset):
    events = []
    result = train(config, dataset, on_event=events.append)
    return result, events


def same_weights(a, b, exact=False):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y) if exact else torch.allclose(x, y, rtol=1e-4, atol=1e-5), name


@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # bf16: the captured step's own autocast, without its cache
def test_the_step_is_captured_once_and_replayed_for_every_full_batch(precision, shapes, monkeypatch):
    stub = StubGraphs()
    monkeypatch.setattr(training, "cuda_graphs", stub)
    graphed, graphed_events = run(GRAPHED.replace(precision=precision), shapes)
    eager, eager_events = run(GRAPHED.replace(precision=precision, cuda_graph=False), shapes)
    full_batches = 2 * 37  # the short last batch of each epoch is stepped eagerly
    assert stub.side_steps == GraphedStep.WARMUP and stub.captures == 1
    assert stub.replays == full_batches - GraphedStep.WARMUP
    same_weights(graphed.model, eager.model)
    losses = [e.loss for e in graphed_events if isinstance(e, BatchEnd)]
    assert losses == pytest.approx([e.loss for e in eager_events if isinstance(e, BatchEnd)], rel=1e-4)
    assert [e.lr for e in graphed_events if isinstance(e, BatchEnd)][-1] == 0.0  # read back from the rate tensor
    assert graphed.evaluation.accuracy == pytest.approx(eager.evaluation.accuracy, abs=0.01)
    assert graphed.status == "finished" and not graphed.notes


def test_a_failed_capture_falls_back_to_the_eager_step_and_says_so(shapes, monkeypatch):
    stub = StubGraphs(fail=True)
    monkeypatch.setattr(training, "cuda_graphs", stub)
    graphed, events = run(GRAPHED.replace(epochs=1), shapes)
    eager, _ = run(GRAPHED.replace(epochs=1, cuda_graph=False), shapes)
    assert stub.captures == 1 and stub.replays == 0
    same_weights(graphed.model, eager.model)
    assert graphed.status == "finished" and "capture failed (RuntimeError" in graphed.notes[0]
    assert isinstance(events[-1], RunEnd) and "trained eagerly" in events[-1].message


def test_off_cuda_the_flag_changes_nothing_but_a_note(shapes):
    flagged, events = run(GRAPHED.replace(epochs=1), shapes)
    plain, _ = run(GRAPHED.replace(epochs=1, cuda_graph=False), shapes)
    same_weights(flagged.model, plain.model, exact=True)  # the very same eager steps, bit for bit
    assert flagged.notes == ["cuda_graph: cpu is not a CUDA device, so every step ran eagerly"]
    assert "not a CUDA device" in events[-1].message


def test_the_command_line_flag_reaches_the_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data._cache.clear()
    assert main(["train", "--data", "shapes", "--dry-run", "--cuda-graph", "--device", "cpu", "--out", "ckpt"]) == 0
    assert "cuda_graph: cpu is not a CUDA device, so every step ran eagerly" in capsys.readouterr().out
