"""`nbfan.Retries`: how a failed input is re-run, applied by the worker that runs it."""

from __future__ import annotations

from dataclasses import dataclass

from nbfan.exception import InvalidError


@dataclass(frozen=True)
class Retries:
    """How failed inputs are re-run: up to `max_retries` times, waiting
    `initial_delay * backoff_coefficient**attempt` seconds (capped at `max_delay`) between tries."""

    max_retries: int
    backoff_coefficient: float = 2.0
    initial_delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise InvalidError(f"Retries(max_retries={self.max_retries!r}): must be an int >= 0")
        for name in ("backoff_coefficient", "initial_delay", "max_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidError(f"Retries({name}={value!r}): must be a number >= 0")
        if self.backoff_coefficient < 1:
            raise InvalidError(f"Retries(backoff_coefficient={self.backoff_coefficient!r}): must be >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        return min(self.initial_delay * self.backoff_coefficient**attempt, self.max_delay)
