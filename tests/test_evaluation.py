"""Evaluation numbers on hand-made predictions, and the tutorial's text lines."""

import torch

from classroom.data import normalize
from classroom.evaluation import Evaluation, accuracy_lines, evaluate
from classroom.models import build


def make(labels, predicted, classes=("plane", "car", "bird")):
    probs = torch.full((len(labels), len(classes)), 0.1)
    probs[torch.arange(len(labels)), torch.tensor(predicted)] = 0.8
    return Evaluation(classes, torch.tensor(labels), probs, 0.5)


def test_accuracy_per_class_and_confusion():
    ev = make([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 0, 2])
    assert abs(ev.accuracy - 4 / 6) < 1e-6
    assert ev.per_class_accuracy == {"plane": 0.5, "car": 1.0, "bird": 0.5}
    assert ev.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert ev.misclassified().tolist() == [1, 4]
    assert ev.misclassified(true=2, predicted=0).tolist() == [4]
    assert ev.top_k(0, 2)[0] == ("plane", 0.800000011920929)


def test_accuracy_lines_follow_the_tutorial_format():
    ev = make([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 0, 2])
    lines = accuracy_lines(ev)
    assert lines[0] == "Accuracy of the network on the 6 test images: 66 %"  # the tutorial floors: 100 * 4 // 6
    assert lines[1] == "Accuracy for class: plane is 50.0 %"
    assert lines[2] == "Accuracy for class: car   is 100.0 %"


def test_evaluate_runs_a_model_over_uint8_images(tiny_dataset):
    d = tiny_dataset
    ev = evaluate(build("net", 3), d.test_x, d.test_y, d.classes, (0.5,) * 3, (0.5,) * 3, batch_size=10, tta=True)
    assert ev.probabilities.shape == (32, 3)
    assert torch.allclose(ev.probabilities.sum(1), torch.ones(32), atol=1e-5)
    assert ev.confusion.sum() == 32


def test_tta_averages_the_predictions_for_the_image_and_its_left_right_mirror(tiny_dataset):
    d, model = tiny_dataset, build("net", 3).eval()
    x = normalize(d.test_x, (0.5,) * 3, (0.5,) * 3)
    ev = evaluate(model, d.test_x, d.test_y, d.classes, (0.5,) * 3, (0.5,) * 3, tta=True)
    with torch.no_grad():
        mirrored = (model(x) + model(x.flip(3))) / 2  # dim 3 is the width: left and right swap
        upside_down = (model(x) + model(x.flip(2))) / 2
    assert torch.allclose(ev.probabilities, mirrored.softmax(1), atol=1e-6)
    assert not torch.allclose(ev.probabilities, upside_down.softmax(1), atol=1e-3)  # the two differ for this model


def test_evaluation_runs_the_model_in_eval_mode_and_hands_it_back_in_its_mode(tiny_dataset):
    d = tiny_dataset
    model = build("fast-cnn", 3)
    model.prepare(normalize(d.train_x, (0.5,) * 3, (0.5,) * 3))
    model(normalize(d.train_x, (0.5,) * 3, (0.5,) * 3))  # a training-mode pass: BatchNorm's running statistics move
    model.train()
    ev = evaluate(model, d.test_x, d.test_y, d.classes, (0.5,) * 3, (0.5,) * 3, batch_size=8)
    assert model.training
    x = normalize(d.test_x, (0.5,) * 3, (0.5,) * 3)
    with torch.no_grad():
        in_eval_mode = model.eval()(x).softmax(1)
        in_train_mode = model.train()(x[:8]).softmax(1)  # BatchNorm on the batch's own statistics
    assert torch.allclose(ev.probabilities, in_eval_mode, atol=1e-6)
    assert not torch.allclose(ev.probabilities[:8], in_train_mode, atol=1e-3)
