"""Loss series kept short however long the run: the chart's points in memory, the batch lines of metrics.jsonl."""

from __future__ import annotations

from collections import deque

RECENT_POINTS = 500  # the chart's last stretch: every report, as it came
HISTORY_POINTS = 1500  # everything before it, evenly merged: a Snapshot carries at most 2000 loss points
MAX_BATCH_LINES = 2000  # batch lines one run writes to metrics.jsonl, epoch ends included


class LossCurve:
    """(global step, loss) points for the loss chart: the last RECENT_POINTS reports, and the older ones merged
    into buckets of equal size, the bucket doubling whenever they pass HISTORY_POINTS (so the whole run stays even)."""

    def __init__(self, recent: int = RECENT_POINTS, history: int = HISTORY_POINTS):
        self._recent_size, self._history_size = recent, history
        self._recent: deque[tuple[int, float]] = deque()
        self._history: list[tuple[int, float, int]] = []  # (last step, mean loss, steps covered)
        self._bucket = 1  # reports per history point
        self._pending = _Mean()  # reports on their way into the next history point
        self._last_step = 0
        self._points: tuple[tuple[int, float], ...] | None = ()

    def add(self, step: int, loss: float) -> None:
        """One report: the mean loss over the steps since the previous report, ending at `step`."""
        self._recent.append((step, loss))
        self._points = None
        if len(self._recent) > self._recent_size:
            self._fold(*self._recent.popleft())

    def __iter__(self):
        return iter(self.points())

    def __len__(self) -> int:
        return len(self.points())

    def points(self) -> tuple[tuple[int, float], ...]:
        """Every point to draw, oldest first (made once per change: pages poll far more often than reports come)."""
        if self._points is None:
            history = [(step, loss) for step, loss, _ in self._history]
            pending = [self._pending.point()] if self._pending.reports else []
            self._points = (*history, *pending, *self._recent)
        return self._points

    def _fold(self, step: int, loss: float) -> None:
        """Move a report out of the recent stretch into the merged history."""
        self._pending.add(step, loss, step - self._last_step)
        self._last_step = step
        if self._pending.reports < self._bucket:
            return
        self._history.append((*self._pending.point(), self._pending.steps))
        self._pending = _Mean()
        if len(self._history) >= self._history_size:  # one place kept for the pending point
            self._history = [_merge(self._history[i : i + 2]) for i in range(0, len(self._history), 2)]
            self._bucket *= 2


class BatchLines:
    """Which batch reports go to metrics.jsonl: one per `spacing` steps and every epoch's last, at most MAX_BATCH_LINES
    lines in all; a line's loss is the mean over every step since the line before, so a curve read back is faithful."""

    def __init__(self, limit: int = MAX_BATCH_LINES):
        self._limit = limit
        self._since = _Mean()  # the reports since the last line written
        self._previous_step = 0
        self._written_step = 0

    def line(self, event: dict) -> dict | None:
        """The line to append for this batch event, or None to leave it out."""
        step, total = event["global_step"], event["total_steps"]
        self._since.add(step, event["loss"], step - self._previous_step)
        self._previous_step = step
        epochs = max(1, total // event["steps_per_epoch"])
        spacing = -(-total // max(1, self._limit - epochs))  # the epoch ends, written on top, stay inside the limit
        epoch_end = event["step"] == event["steps_per_epoch"]
        if step // spacing == self._written_step // spacing and not epoch_end:
            return None
        _, loss = self._since.point()
        self._since, self._written_step = _Mean(), step
        return event | {"loss": loss}


class _Mean:
    """Consecutive reports merged into one point: the last step, the loss averaged over the steps they cover."""

    def __init__(self):
        self.reports, self.steps, self._loss_steps, self._step, self._loss = 0, 0, 0.0, 0, 0.0

    def add(self, step: int, loss: float, steps: int) -> None:
        steps = max(1, steps)
        self.reports, self.steps, self._step, self._loss = self.reports + 1, self.steps + steps, step, loss
        self._loss_steps += loss * steps

    def point(self) -> tuple[int, float]:
        # one report stays exactly as it came: x * n / n is not always x in floating point
        return self._step, self._loss if self.reports == 1 else self._loss_steps / self.steps


def _merge(points: list[tuple[int, float, int]]) -> tuple[int, float, int]:
    """Neighbouring history points as one: the last step, the loss weighted by the steps each covers."""
    if len(points) == 1:
        return points[0]
    steps = sum(n for _, _, n in points)
    return points[-1][0], sum(loss * n for _, loss, n in points) / steps, steps
