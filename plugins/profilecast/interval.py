"""One data interval, timezone-aware everywhere.

Airflow hands tasks ``pendulum.DateTime`` values. Arithmetic on those can silently drop the
timezone (``pendulum.datetime(..., tz="UTC").astimezone(datetime.UTC) - timedelta(days=3)``
is naive), and comparing the result with an aware timestamp raises ``TypeError``. Every run
date in profilecast therefore goes through :class:`Interval`, which holds plain stdlib
``datetime`` objects in UTC, whatever it was built from: pendulum values, stdlib datetimes
(aware or naive, naive meaning UTC), ISO strings or a ``YYYY-MM-DD`` day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any


def utc(value: Any) -> datetime:
    """An aware stdlib ``datetime`` in UTC from a pendulum/stdlib datetime, date or string."""
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        value = datetime.fromisoformat(text)
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=UTC)
        # Rebuild from the POSIX timestamp: this yields a stdlib datetime, never a subclass.
        return datetime.fromtimestamp(value.timestamp(), tz=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise TypeError(f"not a datetime: {value!r} ({type(value).__name__})")


@dataclass(frozen=True)
class Interval:
    """A data interval ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", utc(self.start))
        object.__setattr__(self, "end", utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"interval end {self.end} is not after its start {self.start}")

    @classmethod
    def of(cls, start: Any, end: Any | None = None) -> Interval:
        """From Airflow's ``data_interval_start``/``_end`` (end defaults to start + 1 day)."""
        s = utc(start)
        return cls(s, utc(end) if end is not None else s + timedelta(days=1))

    @classmethod
    def day(cls, ds: str | date) -> Interval:
        """The daily interval that starts at midnight UTC of ``ds``."""
        d = date.fromisoformat(ds) if isinstance(ds, str) else ds
        return cls.of(d)

    @property
    def ds(self) -> str:
        """The interval's start day, ``YYYY-MM-DD`` (the run date used in paths and tables)."""
        return self.start.strftime("%Y-%m-%d")

    @property
    def as_of(self) -> str:
        """The interval's end as a naive UTC timestamp literal (dbt's ``as_of`` var)."""
        return self.end.strftime("%Y-%m-%d %H:%M:%S")

    @property
    def stamp(self) -> str:
        """The interval's start as ``YYYYMMDDTHHMMSS`` (batch ids)."""
        return self.start.strftime("%Y%m%dT%H%M%S")

    def lookback(self, days: int) -> datetime:
        """The start of the interval widened by ``days`` for late data (aware)."""
        return self.start - timedelta(days=days)

    def next(self) -> Interval:
        span = self.end - self.start
        return Interval(self.end, self.end + span)
