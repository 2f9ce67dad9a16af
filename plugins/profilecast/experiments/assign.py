"""Who gets which variant: a pure function of the experiment and the customer.

Two independent hashes per (experiment, customer): one decides the holdout, the other the
variant by weight. The same customer gets the same arm on every day the experiment runs, and
the arms of two experiments are independent of each other (the experiment id salts both).
"""

from __future__ import annotations

import hashlib

from profilecast.experiments.definition import HOLDOUT, Experiment


def unit(*parts: str) -> float:
    """A uniform number in [0, 1) from the parts (the first 15 hex digits of a SHA-256)."""
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return int(digest[:15], 16) / float(16**15)


def assign(experiment: Experiment, customer_id: str, promoted: str | None = None) -> str:
    """``holdout`` or a variant id. ``promoted`` (a promoted winner) replaces the weighted
    draw for everyone outside the holdout."""
    if experiment.holdout > 0 and unit("holdout", experiment.experiment_id, customer_id) < (
        experiment.holdout
    ):
        return HOLDOUT
    if promoted is not None:
        return promoted
    total = sum(v.weight for v in experiment.variants)
    point = unit("variant", experiment.experiment_id, customer_id) * total
    for v in experiment.variants:
        point -= v.weight
        if point < 0:
            return v.variant_id
    return experiment.variants[-1].variant_id
