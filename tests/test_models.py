"""Models: the tutorial Net exactly, output shapes of every model, the registry."""

import pytest
import torch

from classroom import models


def test_net_is_the_tutorials_layer_for_layer():
    net = models.Net()
    assert [type(m).__name__ for m in net.children()] == ["Conv2d", "MaxPool2d", "Conv2d", "Linear", "Linear", "Linear"]
    assert (net.conv1.in_channels, net.conv1.out_channels, net.conv1.kernel_size) == (3, 6, (5, 5))
    assert (net.conv2.in_channels, net.conv2.out_channels, net.conv2.kernel_size) == (6, 16, (5, 5))
    assert [(f.in_features, f.out_features) for f in (net.fc1, net.fc2, net.fc3)] == [(400, 120), (120, 84), (84, 10)]
    assert models.parameter_count(net) == 62006  # the tutorial's Net has 62,006 parameters


@pytest.mark.parametrize("name", list(models.MODELS))
def test_every_model_maps_a_batch_to_ten_logits(name):
    model = models.build(name)
    out = model(torch.randn(5, 3, 32, 32))
    assert out.shape == (5, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(models.MODELS))
def test_models_adapt_to_the_number_of_classes(name):
    assert models.build(name, num_classes=3)(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="unknown model"):
        models.build("alexnet")
