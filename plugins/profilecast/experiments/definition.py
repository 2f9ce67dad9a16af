"""An experiment: the variants a campaign or flow message sends, their weights, a holdout
share and the policy that may promote a winner. Declared under ``experiment:`` in the
message's ``campaign.yml``; a plain ``subject_variants`` list is an experiment too (equal
weights, no holdout).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

#: Variant and experiment ids travel as SES message tags and SendGrid custom args.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HOLDOUT = "holdout"
METRICS = ("converted", "clicked", "opened")
POLICIES = ("none", "promote")


class ExperimentError(ValueError):
    """An experiment declaration is invalid."""


@dataclass(frozen=True)
class Variant:
    variant_id: str
    weight: float
    subject: str
    preheader: str | None = None
    #: named body blocks: ``{{ blocks.<name> }}`` in the body templates
    blocks: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WinnerPolicy:
    """When a leading variant counts as the winner, and whether it is promoted.

    ``promote``: once the leader beats every other variant on ``metric`` with a two-sided
    two-proportion z-test at ``alpha`` (Bonferroni over the comparisons) and every arm has
    ``min_sample`` recipients, every later recipient gets the winner (the holdout stays).
    """

    policy: str = "none"
    metric: str = "converted"
    alpha: float = 0.01
    min_sample: int = 1000


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    variants: tuple[Variant, ...]
    holdout: float = 0.0
    #: an order within this many days of the send counts as a conversion
    attribution_days: int = 5
    winner: WinnerPolicy = field(default_factory=WinnerPolicy)
    #: the confidence level of the reported intervals
    confidence: float = 0.95

    def variant(self, variant_id: str) -> Variant:
        for v in self.variants:
            if v.variant_id == variant_id:
                return v
        raise ExperimentError(f"experiment {self.experiment_id}: no variant {variant_id!r}")

    @property
    def block_names(self) -> list[str]:
        return sorted({name for v in self.variants for name in v.blocks})


def _number(raw: dict[str, Any], key: str, default: float, lo: float, hi: float,
            where: str) -> float:  # fmt: skip
    try:
        value = float(raw.get(key, default))
    except (TypeError, ValueError):
        raise ExperimentError(f"{where}: {key} must be a number") from None
    if not lo <= value <= hi:
        raise ExperimentError(f"{where}: {key} must be between {lo} and {hi}, not {value}")
    return value


def _winner(raw: Any, where: str) -> WinnerPolicy:
    if raw is None:
        return WinnerPolicy()
    if not isinstance(raw, dict):
        raise ExperimentError(f"{where}: winner must be a mapping")
    policy = str(raw.get("policy", "none"))
    if policy not in POLICIES:
        raise ExperimentError(f"{where}: winner policy {policy!r} (use {', '.join(POLICIES)})")
    metric = str(raw.get("metric", "converted"))
    if metric not in METRICS:
        raise ExperimentError(f"{where}: winner metric {metric!r} (use {', '.join(METRICS)})")
    return WinnerPolicy(
        policy=policy,
        metric=metric,
        alpha=_number(raw, "alpha", 0.01, 1e-6, 0.2, where),
        min_sample=int(_number(raw, "min_sample", 1000, 1, 1e9, where)),
    )


def parse_experiment(
    raw: Any, owner: str, subject_variants: list[str], preheader: str, where: str
) -> Experiment:
    """The experiment a message folder declares (``raw`` is its ``experiment:`` mapping, or
    None: then each of ``subject_variants`` is an equally weighted variant, ``v0``, ``v1``...)."""
    if raw is None:
        if not subject_variants:
            raise ExperimentError(f"{where}: no subject_variants and no experiment")
        variants = tuple(Variant(f"v{i}", 1.0, s, None) for i, s in enumerate(subject_variants))
        return Experiment(owner, variants)
    if not isinstance(raw, dict):
        raise ExperimentError(f"{where}: experiment must be a mapping")
    experiment_id = str(raw.get("id") or owner)
    if not ID_PATTERN.match(experiment_id):
        raise ExperimentError(
            f"{where}: experiment id {experiment_id!r} must match {ID_PATTERN.pattern}"
        )
    declared = raw.get("variants") or []
    if not isinstance(declared, list) or not declared:
        raise ExperimentError(f"{where}: experiment needs a list of variants")
    variants = []
    for i, item in enumerate(declared):
        if not isinstance(item, dict):
            raise ExperimentError(f"{where}: variant {i} must be a mapping")
        vid = str(item.get("id") or f"v{i}")
        if not ID_PATTERN.match(vid) or vid == HOLDOUT:
            raise ExperimentError(f"{where}: variant id {vid!r} must match "
                                  f"{ID_PATTERN.pattern} and not be {HOLDOUT!r}")  # fmt: skip
        subject = item.get("subject") or (subject_variants[0] if subject_variants else None)
        if not subject:
            raise ExperimentError(f"{where}: variant {vid} has no subject")
        blocks = item.get("blocks") or {}
        if not isinstance(blocks, dict):
            raise ExperimentError(f"{where}: variant {vid} blocks must be a mapping")
        weight = _number(item, "weight", 1.0, 0.0, 1e6, f"{where}: variant {vid}")
        variants.append(Variant(vid, weight, str(subject), item.get("preheader"),
                                {str(k): str(v) for k, v in blocks.items()}))  # fmt: skip
    ids = [v.variant_id for v in variants]
    if len(set(ids)) != len(ids):
        raise ExperimentError(f"{where}: variant ids repeat: {ids}")
    if sum(v.weight for v in variants) <= 0:
        raise ExperimentError(f"{where}: the variants' weights add up to 0")
    return Experiment(
        experiment_id=experiment_id,
        variants=tuple(variants),
        holdout=_number(raw, "holdout", 0.0, 0.0, 0.9, where),
        attribution_days=int(_number(raw, "attribution_days", 5, 0, 90, where)),
        winner=_winner(raw.get("winner"), where),
        confidence=_number(raw, "confidence", 0.95, 0.5, 0.999, where),
    )
