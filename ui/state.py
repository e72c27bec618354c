"""Process-wide objects every session shares, and this student's identity.

They live in module-level singletons, created once per server process: never in st.cache_resource, whose
contents any client can drop with Streamlit's clear_cache message (that rebuilt the RunManager from disk while
runs were training, and let every device take more runs than it has slots)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from classroom import data
from classroom.runs import RunManager
from ui import access

T = TypeVar("T")


class ProcessWide(Generic[T]):
    """One object per server process, made on first use (again once `ttl` seconds old); concurrent first
    uses wait for the one being made. clear() is for tests and shutdown only."""

    def __init__(self, make: Callable[[], T], ttl: float | None = None):
        self._make, self._ttl, self._lock = make, ttl, threading.Lock()
        self._value: T | None = None
        self._made = 0.0

    def __call__(self) -> T:
        with self._lock:
            if self._value is None or (self._ttl is not None and time.monotonic() - self._made > self._ttl):
                self._value, self._made = self._make(), time.monotonic()
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._value = None


def _make_manager() -> RunManager:
    return RunManager(
        runs_dir=os.environ.get("CLASSROOM_RUNS_DIR", "runs"),
        max_per_device=_env_int("CLASSROOM_MAX_RUNS_PER_DEVICE", 1),
        max_queue=_env_int("CLASSROOM_MAX_QUEUE", 16),
        max_run_bytes=_env_int("CLASSROOM_MAX_RUN_MB", 2048) * 2**20,
        data_roots=data_roots(),
    )


manager = ProcessWide(_make_manager)  # the one RunManager of this server (DESIGN.md: runs outlive pages and tabs)


class Answers:
    """Every browser's answers to the lessons' check questions, kept for the process (a reload finds them again)."""

    MAX_BROWSERS = 10_000  # a bound on memory: the oldest browser's answers go first

    def __init__(self):
        self._lock = threading.Lock()
        self._by_browser: dict[str, dict[str, tuple[str, bool]]] = {}

    def get(self, browser: str, key: str) -> str | None:
        with self._lock:
            return self._by_browser.get(browser, {}).get(key, (None, False))[0]

    def put(self, browser: str, key: str, answer: str, right: bool) -> None:
        with self._lock:
            mine = self._by_browser.pop(browser, {})
            mine[key] = (answer, right)
            self._by_browser[browser] = mine  # most recent last
            while len(self._by_browser) > self.MAX_BROWSERS:
                del self._by_browser[next(iter(self._by_browser))]

    def score(self, browser: str, prefix: str) -> tuple[int, int]:
        """(right, answered) among this browser's answers whose key starts with prefix (a lesson's slug)."""
        with self._lock:
            mine = [right for key, (_, right) in self._by_browser.get(browser, {}).items() if key.startswith(prefix)]
        return sum(mine), len(mine)


answers = Answers()


def data_dir() -> str:
    """Where CIFAR-10 and decoded image folders are kept."""
    return os.environ.get("CLASSROOM_DATA_DIR", "data")


def owner() -> str:
    """Whose runs these are: this browser (a reload or a second tab is the same student)."""
    return access.browser_id()


def _env_int(name: str, default: int) -> int:
    try:
        return max(1, int(os.environ.get(name, default)))
    except ValueError:
        return default


def data_roots() -> list:
    """The folders whose image sets this server may read (CLASSROOM_DATA_ROOTS; the data dir by default)."""
    return data.allowed_roots(data_dir())
