"""When a message goes out: at once (no ``send_time``), at a fixed local hour
(``send_time: {hour: 10}``), or at each customer's best local hour (``send_time: optimal``,
from the ``customer_send_times`` mart; a customer it does not know gets ``fallback_hour``).
The export carries the moment as ``send_at`` (UTC)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class SendTimeError(ValueError):
    """A send_time declaration is invalid."""


@dataclass(frozen=True)
class SendTime:
    mode: str  # "optimal" or "fixed"
    hour: int = 10  # the fixed hour, or the fallback for "optimal"


def parse_send_time(raw: Any, where: str) -> SendTime | None:
    if raw is None:
        return None
    if raw == "optimal":
        return SendTime("optimal")
    if isinstance(raw, dict):
        mode = str(raw.get("mode", "fixed" if "hour" in raw else "optimal"))
        hour = raw.get("hour", raw.get("fallback_hour", 10))
        if mode in ("optimal", "fixed") and isinstance(hour, int) and 0 <= hour <= 23:
            return SendTime(mode, hour)
    raise SendTimeError(f"{where}: send_time must be `optimal`, {{hour: 0-23}} or "
                        f"{{mode: optimal, fallback_hour: 0-23}}, not {raw!r}")  # fmt: skip


def zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name)) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def next_send_at(after: datetime, tz: Any, hour: int) -> datetime:
    """The first moment at or after ``after`` whose local hour (in ``tz``) is ``hour``, at
    minute 0, in UTC. A local hour a DST change skips falls on the hour after."""
    local = after.astimezone(zone(tz))
    at = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if at < local:
        at = (local + timedelta(days=1)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return at.astimezone(UTC)


def send_at_for(spec: SendTime | None, after: datetime, row: dict[str, Any]) -> str | None:
    """``send_at`` for one audience row (which carries best_local_hour and time_zone)."""
    if spec is None:
        return None
    hour = spec.hour
    if spec.mode == "optimal" and row.get("best_local_hour") is not None:
        best = row["best_local_hour"]
        if best == best:  # not NaN
            hour = int(best)
    return _send_at_text(after, row.get("time_zone"), hour)


@lru_cache(maxsize=4096)
def _send_at_text(after: datetime, tz: Any, hour: int) -> str:
    """``next_send_at`` as text, kept per (moment, zone, hour): a render asks for the same
    few hundred combinations again for every recipient (a twelfth of its time)."""
    return next_send_at(after, tz, hour).strftime("%Y-%m-%d %H:%M:%S")
