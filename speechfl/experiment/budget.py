"""An epoch counter that also stops after a wall-clock budget (checked between epochs)."""

from __future__ import annotations

import time

from speechbrain.utils.epoch_loop import EpochCounter


class TimedEpochCounter(EpochCounter):
    """SpeechBrain ``EpochCounter`` that stops at ``limit`` epochs or ``max_seconds``.

    The budget is checked before each epoch starts, so a run overshoots by at most
    one epoch; ``max_seconds <= 0`` disables it. ``clock='cpu'`` counts this process's CPU
    seconds (all its threads) instead of wall seconds: on a shared machine, a one-thread run then
    gets the compute it would get on a quiet one.
    """

    CLOCKS = {"wall": time.monotonic, "cpu": time.process_time}

    def __init__(self, limit: int, max_seconds: float = 0.0, clock: str = "wall"):
        super().__init__(limit)
        if clock not in self.CLOCKS:
            raise ValueError(f"unknown clock {clock!r}; valid: {', '.join(self.CLOCKS)}")
        self.max_seconds = float(max_seconds)
        self.clock = clock
        self._start = None

    def elapsed(self) -> float:
        return 0.0 if self._start is None else self.CLOCKS[self.clock]() - self._start

    def __next__(self):
        if self._start is None:
            self._start = self.CLOCKS[self.clock]()
        elif self.max_seconds > 0 and self.elapsed() >= self.max_seconds:
            raise StopIteration
        return super().__next__()
