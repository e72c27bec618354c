"""torch's CPU thread count: set for each piece of work from its own settings, never inherited from other work.

What torch does (measured, OpenMP build): torch.set_num_threads sets the count of the calling thread (OpenMP and MKL
keep one per thread) and also a process-wide count, which a thread adopts at its first parallel op, over any count
it set before that. So one thread's setting leaks into every thread started after it (the next run, a page's
script thread), and can even replace the count of a thread that set its own but has not computed yet.

The rule here: work that needs a count (a run, a lesson, a timing) sets it in its own thread with `using`, from its
own settings (config.threads) or DEFAULT, and puts back DEFAULT when it ends, never "what it was", which may be
another run's setting. Two CPU runs at once still share the cores: the RunManager gives each device one run at a
time by default.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

DEFAULT = torch.get_num_threads()  # torch's own choice (its cores, or OMP_NUM_THREADS), read once at import


@contextlib.contextmanager
def using(count: int | None) -> Iterator[None]:
    """Run the block with `count` CPU threads in this thread (0 or None: DEFAULT), then put back DEFAULT."""
    count = count or DEFAULT
    torch.get_num_threads()  # this thread adopts the process-wide count now, so that it cannot later replace ours
    torch.set_num_threads(count)
    if count != DEFAULT:
        _new_threads_start_with_default()
    try:
        yield
    finally:
        torch.set_num_threads(DEFAULT)


def _new_threads_start_with_default() -> None:
    """Set the count threads started from now on adopt back to DEFAULT, leaving this thread's own as it is."""
    helper = threading.Thread(target=torch.set_num_threads, args=(DEFAULT,), name="thread-count-default")
    helper.start()
    helper.join()
