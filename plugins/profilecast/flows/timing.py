"""When a flow step is due: delays, the customer's local hour, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from profilecast.flows.definition import Delay


def zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name)) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def due_after(
    start: datetime, delay: Delay, tz: ZoneInfo, reorder_days: float | None = None
) -> datetime:
    """When a step with ``delay`` is due, counted from ``start``. A re-order delay waits the
    products' interval less its ``after`` (``days_before``) and needs ``reorder_days``."""
    if delay.reorder:
        if reorder_days is None:
            raise ValueError("a re-order delay needs the products' re-order interval")
        at = start + timedelta(days=reorder_days) - delay.after
    else:
        at = start + delay.after
    if delay.at_local_hour is None:
        return at
    local = at.astimezone(tz)
    target = datetime.combine(local.date(), dtime(delay.at_local_hour), tz)
    if target < local:
        target = datetime.combine(local.date() + timedelta(days=1), dtime(delay.at_local_hour), tz)
    return target.astimezone(UTC)


def quiet_until(now: datetime, window: tuple[dtime, dtime] | None, tz: ZoneInfo) -> datetime | None:
    """The end of the quiet window ``now`` falls in (customer's local time), or None."""
    if window is None:
        return None
    start, end = window
    local = now.astimezone(tz)
    t = local.time()
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if not inside:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tz).astimezone(UTC)
