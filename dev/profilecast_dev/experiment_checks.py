"""The simulation's experiment invariants: the holdout is never exported, and the
``campaign_results`` mart agrees with what the simulated ESP world made happen."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

#: counts the world decides alone (no other data can add to them)
EXACT = (("sent", "sent"), ("delivered", "delivered"), ("opened", "opened"),
         ("clicked", "clicked"), ("bounced", "bounced"))  # fmt: skip


def check_holdout(con: Any, messages: list[dict[str, Any]]) -> tuple[bool, str]:
    """No (campaign, customer, day) recorded as held out is among the exported messages."""
    if not con.execute(
        "select count(*) from information_schema.tables where table_name = 'experiment_holdouts'"
    ).fetchall()[0][0]:
        return True, "no holdout recorded yet"
    held = {(c, d.isoformat(), k) for k, c, d in con.execute(
        "select message_key, campaign_id, run_date from experiment_holdouts").fetchall()}  # fmt: skip
    exported = {m["message_key"] for m in messages}
    leaked = [h for h in held if h[2] in exported]
    return not leaked, f"{len(held)} held out, {len(leaked)} exported"


def check_results(
    con: Any, outcomes: dict[str, list[dict[str, Any]]], latest: str
) -> tuple[bool, str]:
    """For every send day with feedback loaded (before the latest run date), each
    (campaign, variant) row of campaign_results equals the world's counts for sent,
    delivered, opened (people), clicked and bounced, holds every recipient, and counts at
    least the world's conversions (other orders in the window may add to them)."""
    due = {ds: rows for ds, rows in outcomes.items() if ds < latest}
    if not due:
        return True, "no feedback loaded yet"
    got = {
        (c, v, d.isoformat()): dict(zip(("recipients", "sent", "delivered", "opened", "clicked",
                                         "bounced", "converted"), rest, strict=True))
        for c, v, d, *rest in con.execute(
            "select campaign_id, variant, send_date, recipients, sent, delivered, opened, "
            "clicked, bounced, converted from campaign_results"
        ).fetchall()
    }  # fmt: skip
    want: dict[tuple[str, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for ds, rows in due.items():
        for r in rows:
            w = want[(r["campaign_id"], r["variant"], ds)]
            w["recipients"] += 1
            w["sent"] += int(r["status"] == "sent")
            for k in ("delivered", "opened", "clicked", "bounced", "converted"):
                w[k] += int(r[k])
    bad = []
    for key, w in sorted(want.items()):
        g = got.get(key)
        if g is None:
            bad.append(f"{key}: missing")
            continue
        diffs = [f"{k} {g[k]} != {w[k]}" for k, _ in (("recipients", 0), *EXACT) if g[k] != w[k]]
        if g["converted"] < w["converted"]:
            diffs.append(f"converted {g['converted']} < {w['converted']}")
        if diffs:
            bad.append(f"{key}: {'; '.join(diffs)}")
    n = sum(w["recipients"] for w in want.values())
    detail = f"{len(want)} rows, {n} messages match" if not bad else "; ".join(bad[:3])
    return not bad, detail
