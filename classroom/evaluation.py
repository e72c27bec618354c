"""Accuracy the tutorial's way and more: per class, confusion matrix, per-image probabilities."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from classroom.data import normalize


@dataclass(frozen=True, eq=False)
class Evaluation:
    """A model's predictions on a labelled set, with the numbers derived from them."""

    classes: tuple[str, ...]
    labels: torch.Tensor  # int64 [N], the true classes
    probabilities: torch.Tensor  # float32 [N, classes], softmax of the logits
    loss: float  # mean cross-entropy

    @property
    def predictions(self) -> torch.Tensor:
        """The most probable class per image."""
        return self.probabilities.argmax(1)

    @property
    def accuracy(self) -> float:
        """Fraction of images classified correctly."""
        return (self.predictions == self.labels).float().mean().item() if len(self.labels) else 0.0

    @property
    def confusion(self) -> torch.Tensor:
        """int64 [true, predicted] counts."""
        k = len(self.classes)
        return torch.bincount(self.labels * k + self.predictions, minlength=k * k).view(k, k)

    @property
    def per_class_accuracy(self) -> dict[str, float]:
        """Fraction correct among the images of each class (0 for a class with no images)."""
        m = self.confusion
        totals = m.sum(1).clamp(min=1)
        return {c: (m[i, i] / totals[i]).item() for i, c in enumerate(self.classes)}

    def misclassified(self, true: int | None = None, predicted: int | None = None) -> torch.Tensor:
        """Indices of wrong predictions, optionally only those of one (true, predicted) pair."""
        wrong = self.predictions != self.labels
        if true is not None:
            wrong &= self.labels == true
        if predicted is not None:
            wrong &= self.predictions == predicted
        return wrong.nonzero().flatten()

    def top_k(self, index: int, k: int = 3) -> list[tuple[str, float]]:
        """The k most probable classes of one image, with their probabilities."""
        p, i = self.probabilities[index].topk(min(k, len(self.classes)))
        return [(self.classes[j], float(q)) for q, j in zip(p.tolist(), i.tolist())]

    def summary(self) -> dict:
        """JSON-ready numbers: accuracy, loss, per-class accuracy, confusion matrix."""
        return {
            "test_accuracy": self.accuracy,
            "test_loss": self.loss,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion": self.confusion.tolist(),
            "images": len(self.labels),
        }


SAMPLES = 10  # test images whose predictions each epoch reports: one per class on CIFAR-10
SAMPLE_TOP = 3  # classes listed per sample image


def sample_indices(labels: torch.Tensor, n: int = SAMPLES) -> list[int]:
    """n fixed test images spread over the classes: each class's first image in class order, then each one's second, ...

    A function of the labels alone, so every epoch, the final evaluation and a restarted server pick the same ones."""
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(labels.tolist()):
        seen = by_class.setdefault(c, [])
        if len(seen) < n:
            seen.append(i)
    classes = [by_class[c] for c in sorted(by_class)]
    return [seen[r] for r in range(n) for seen in classes if r < len(seen)][:n]


def sample_predictions(evaluation: Evaluation, indices: list[int], k: int = SAMPLE_TOP) -> list[dict]:
    """JSON-ready predictions for some images: index into the test set, true class, top k as [class, probability].

    Class numbers, not names, and probabilities to 4 places: an epoch line of metrics.jsonl stays short."""
    if not indices:
        return []
    p, c = evaluation.probabilities[indices].topk(min(k, len(evaluation.classes)), dim=1)
    labels = evaluation.labels[indices].tolist()
    return [
        {"index": i, "label": y, "top": [[j, round(q, 4)] for j, q in zip(cs, ps)]}
        for i, y, cs, ps in zip(indices, labels, c.tolist(), p.tolist())
    ]


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on the device when asked, else a no-op context."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    classes,
    mean,
    std,
    batch_size: int = 1000,
    bf16: bool = False,
    channels_last: bool = False,
    tta: bool = False,
    limit: int = 0,
) -> Evaluation:
    """Run the model over uint8 images x with labels y; tta averages with the mirrored image."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if limit:
        x, y = x[:limit], y[:limit]
    logits = []
    for i in range(0, len(x), batch_size):
        xb = normalize(x[i : i + batch_size].to(device, non_blocking=True), mean, std)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device, bf16):
            out = model(xb).float()
            if tta:
                out = (out + model(xb.flip(3)).float()) / 2
        logits.append(out)
    model.train(was_training)
    logits = torch.cat(logits).float().cpu() if logits else torch.zeros(0, len(classes))
    y = y.cpu()
    loss = F.cross_entropy(logits, y).item() if len(y) else 0.0
    return Evaluation(tuple(classes), y, logits.softmax(1), loss)


def accuracy_lines(evaluation: Evaluation) -> list[str]:
    """The tutorial's printed result: the overall line, then one line per class."""
    return confusion_lines(evaluation.confusion.tolist(), evaluation.classes)


def confusion_lines(confusion: list[list[int]], classes) -> list[str]:
    """The tutorial's printed result from a [true, predicted] count matrix (as an epoch event carries it)."""
    total = sum(map(sum, confusion))
    correct = sum(confusion[i][i] for i in range(len(confusion)))
    lines = [f"Accuracy of the network on the {total} test images: {100 * correct // max(total, 1)} %"]
    for i, name in enumerate(classes):
        lines.append(f"Accuracy for class: {name:5s} is {100 * confusion[i][i] / max(sum(confusion[i]), 1):.1f} %")
    return lines
