"""Shared fixtures: a tiny data set, a temporary runs directory, the browser."""

import pytest
import torch

from classroom.data import Dataset


@pytest.fixture
def tiny_dataset() -> Dataset:
    """64 train and 32 test random images of 3 classes, made in microseconds."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (96, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(96) % 3
    return Dataset("tiny", ("a", "b", "c"), x[:64], y[:64], x[64:], y[64:], synthetic=True)


@pytest.fixture(autouse=True)
def fresh_door(monkeypatch):
    """Each test starts with no browser signed in and the sign-in limiter full (they are process-wide)."""
    from ui import gate

    monkeypatch.setattr(gate, "sign_ins", gate.SignIns())
    monkeypatch.setattr(gate, "limiter", gate.SignInLimiter(per_address=(5, 12.0), whole_server=(30, 2.0)))


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium driven by Playwright, shared by the browser tests."""
    from tests.browser import chromium

    with chromium() as b:
        yield b
