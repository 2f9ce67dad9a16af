"""A campaign's results, from the ``campaign_results`` mart: per variant the funnel and the
rates with their intervals, each variant's conversion lift over the holdout (and that of
sending at all), and the winner rule's verdict.

Rates and their denominators: open, click, unsubscribe and complaint rates are per delivered
message (opens without Apple Mail Privacy Protection's machine opens); the conversion rate
and revenue per recipient are per recipient, so the holdout (never sent) compares directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from profilecast.experiments.definition import HOLDOUT, Experiment
from profilecast.experiments.stats import decide_winner, newcombe, wilson, z_test

COUNTS = ("recipients", "sent", "delivered", "opened", "machine_opened_only", "clicked",
          "unsubscribed", "complained", "bounced", "converted")  # fmt: skip
#: rate -> (numerator, denominator)
RATES = {
    "open_rate": ("opened", "delivered"),
    "click_rate": ("clicked", "delivered"),
    "unsubscribe_rate": ("unsubscribed", "delivered"),
    "complaint_rate": ("complained", "delivered"),
    "conversion_rate": ("converted", "recipients"),
}
METRIC_COUNTS = {"converted": ("converted", "recipients"), "clicked": ("clicked", "delivered"),
                 "opened": ("opened", "delivered")}  # fmt: skip


@dataclass
class Arm:
    variant: str
    counts: dict[str, int]
    revenue: float

    def rate(self, name: str, confidence: float) -> dict[str, float | None]:
        num, den = RATES[name]
        n, k = self.counts[den], self.counts[num]
        lo, hi = wilson(k, n, confidence)
        return {"rate": (k / n) if n else None, "low": lo if n else None, "high": hi if n else None}


def load_rows(wh: Any, campaign_id: str, until: str | None = None) -> list[dict[str, Any]]:
    """The mart's rows for one campaign (up to a send date), oldest first."""
    if not wh.table_exists("campaign_results"):
        return []
    cond = "and send_date <= %s" if until else ""
    frame = wh.df(
        f"select * from campaign_results where campaign_id = %s {cond} "
        f"order by send_date, experiment_id, variant",
        (campaign_id, until) if until else (campaign_id,),
    )
    return frame.to_dict("records")


def _arms(rows: list[dict[str, Any]]) -> dict[str, Arm]:
    arms: dict[str, Arm] = {}
    for r in rows:
        arm = arms.setdefault(r["variant"], Arm(r["variant"], dict.fromkeys(COUNTS, 0), 0.0))
        for c in COUNTS:
            arm.counts[c] += int(r[c])
        arm.revenue += float(r["revenue"])
    return arms


def _lift(arm: Arm, control: Arm, confidence: float) -> dict[str, Any]:
    k1, n1 = arm.counts["converted"], arm.counts["recipients"]
    k2, n2 = control.counts["converted"], control.counts["recipients"]
    diff, lo, hi = newcombe(k1, n1, k2, n2, confidence)
    z, p = z_test(k1, n1, k2, n2)
    base = k2 / n2 if n2 else None
    return {"difference": diff, "low": lo, "high": hi, "z": z, "p_value": p,
            "relative": (diff / base) if base else None}  # fmt: skip


def summarise(campaign_id: str, experiment: Experiment | None,
              rows: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """Everything the CLI and the report show for one campaign's newest experiment."""
    experiment_id = experiment.experiment_id if experiment else None
    if experiment_id is None and rows:
        experiment_id = rows[-1]["experiment_id"]
    rows = [r for r in rows if r["experiment_id"] == experiment_id]
    confidence = experiment.confidence if experiment else 0.95
    arms = _arms(rows)
    control = arms.get(HOLDOUT)
    variants = {v: a for v, a in sorted(arms.items()) if v != HOLDOUT}
    out: dict[str, Any] = {
        "campaign_id": campaign_id,
        "experiment_id": experiment_id,
        "confidence": confidence,
        "days": sorted({str(r["send_date"])[:10] for r in rows}),
        "attribution_complete": all(bool(r["attribution_complete"]) for r in rows),
        "arms": [],
    }
    for name, arm in [*variants.items(), *([(HOLDOUT, control)] if control else [])]:
        entry: dict[str, Any] = {"variant": name, **arm.counts, "revenue": round(arm.revenue, 2),
                                 "revenue_per_recipient": (arm.revenue / arm.counts["recipients"]
                                                           if arm.counts["recipients"] else None)}  # fmt: skip
        for rate in RATES:
            entry[rate] = arm.rate(rate, confidence)
        if control is not None and name != HOLDOUT:
            entry["lift_vs_holdout"] = _lift(arm, control, confidence)
        out["arms"].append(entry)
    if control is not None and variants:
        sent = Arm("all sent", dict.fromkeys(COUNTS, 0), 0.0)
        for arm in variants.values():
            for c in COUNTS:
                sent.counts[c] += arm.counts[c]
        out["sending_vs_holdout"] = _lift(sent, control, confidence)
    policy = experiment.winner if experiment else None
    metric = policy.metric if policy else "converted"
    num, den = METRIC_COUNTS[metric]
    verdict = decide_winner(
        {v: (a.counts[den], a.counts[num]) for v, a in variants.items()},
        policy.alpha if policy else 0.01,
        policy.min_sample if policy else 1000,
    )
    out["winner"] = {"variant": verdict.winner, "reason": verdict.reason, "metric": metric,
                     "evidence": verdict.evidence}  # fmt: skip
    out["daily"] = [
        {"send_date": str(r["send_date"])[:10], "variant": r["variant"],
         "recipients": int(r["recipients"]), "converted": int(r["converted"])}
        for r in rows
    ]  # fmt: skip
    return out
