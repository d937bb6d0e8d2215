"""A clock for :class:`~dativo_provider.sources.http.HttpClient` that records sleeps instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class FakeClock:
    """Monotonic and wall time advance only when the client "sleeps"; ``sleeps`` lists every wait."""

    def __init__(self, now: datetime = datetime(2024, 6, 1, tzinfo=UTC)) -> None:
        self.sleeps: list[float] = []
        self._monotonic = 0.0
        self._now = now

    def monotonic(self) -> float:
        return self._monotonic

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        """Let time pass without a sleep (e.g. for an OAuth token to expire)."""
        self._monotonic += seconds
        self._now += timedelta(seconds=seconds)
