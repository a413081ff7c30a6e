"""An epoch counter that also stops after a wall-clock budget (checked between epochs)."""

from __future__ import annotations

import time

from speechbrain.utils.epoch_loop import EpochCounter


class TimedEpochCounter(EpochCounter):
    """SpeechBrain ``EpochCounter`` that stops at ``limit`` epochs or ``max_seconds``.

    The budget is checked before each epoch starts, so a run overshoots by at most
    one epoch; ``max_seconds <= 0`` disables it.
    """

    def __init__(self, limit: int, max_seconds: float = 0.0):
        super().__init__(limit)
        self.max_seconds = float(max_seconds)
        self._start = None

    def __next__(self):
        if self._start is None:
            self._start = time.monotonic()
        elif self.max_seconds > 0 and time.monotonic() - self._start >= self.max_seconds:
            raise StopIteration
        return super().__next__()
