"""The winner policy's decisions: a log of JSON lines under ``$PROFILECAST_HOME/experiments``,
one per promoted winner with its evidence. Render reads the log: a promoted variant goes to
everyone outside the holdout from the next render on. A decision is never taken twice for an
experiment; a new experiment id starts afresh."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def log_path(home: Path) -> Path:
    return home / "experiments" / "decisions.jsonl"


def decisions(home: Path) -> list[dict[str, Any]]:
    path = log_path(home)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def promoted(home: Path, experiment_id: str) -> str | None:
    """The promoted winner of an experiment, or None."""
    for d in decisions(home):
        if d["experiment_id"] == experiment_id and d["action"] == "promote":
            return str(d["winner"])
    return None


def decide_winners(home: Path, wh: Any, campaigns: list[Any], ds: str) -> list[dict[str, Any]]:
    """Promote each significant winner of a campaign whose policy is ``promote`` (once per
    experiment); returns the decisions taken now."""
    from profilecast.experiments.results import load_rows, summarise

    taken = []
    for campaign in campaigns:
        experiment = campaign.arms
        if experiment.winner.policy != "promote" or promoted(home, experiment.experiment_id):
            continue
        summary = summarise(campaign.campaign_id, experiment, load_rows(wh, campaign.campaign_id))
        winner = summary["winner"]
        if winner["variant"] is None:
            continue
        decision = {
            "experiment_id": experiment.experiment_id,
            "campaign_id": campaign.campaign_id,
            "action": "promote",
            "winner": winner["variant"],
            "metric": winner["metric"],
            "reason": winner["reason"],
            "evidence": winner["evidence"],
            "decided_for": ds,
            "decided_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        path = log_path(home)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(decision, sort_keys=True, default=str) + "\n")
        taken.append(decision)
    return taken
