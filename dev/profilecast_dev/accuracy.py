"""Identity accuracy: pairwise precision and recall of the warehouse's identity map against
the generator's ground truth (``truth/``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def pairwise_scores(pairs: Iterable[tuple[str, str]]) -> dict[str, float]:
    """Pairwise precision, recall and F1 from (predicted_cluster, true_cluster) per record.

    Counts pairs without enumerating them: pairs in both = sum over (pred, true) cells of
    C(n, 2); predicted pairs = sum over predicted clusters of C(n, 2); likewise true pairs.
    """
    from collections import Counter

    cells: Counter[tuple[str, str]] = Counter()
    pred: Counter[str] = Counter()
    true: Counter[str] = Counter()
    for p, t in pairs:
        cells[(p, t)] += 1
        pred[p] += 1
        true[t] += 1

    def c2(n: int) -> int:
        return n * (n - 1) // 2

    tp = sum(c2(n) for n in cells.values())
    pp = sum(c2(n) for n in pred.values())
    tt = sum(c2(n) for n in true.values())
    precision = tp / pp if pp else 1.0
    recall = tp / tt if tt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "true_pairs": tt,
        "predicted_pairs": pp,
        "correct_pairs": tp,
        "records": sum(pred.values()),
    }


TRUTH_SOURCES = {
    ("crm", "contacts"): "crm",
    ("billing", "customers"): "billing",
    ("web", "anonymous_id"): "web_anonymous",
    ("esp", "email"): "esp",
}


def accuracy_against_truth(wh: Any, drop: Any) -> dict[str, float]:
    """Pairwise precision/recall of customer_identity_map against the generator's truth/."""
    from pathlib import Path

    from profilecast_dev.generate import read_truth

    truth: dict[tuple[str, str], str] = {}
    for row in read_truth(Path(drop)):
        source = TRUTH_SOURCES.get((row["source"], row["entity"]))
        if source:
            key = row["source_record_id"]
            truth[(source, key.strip().lower() if source == "esp" else key)] = row["person_id"]
            if source == "crm":  # web userIds are CRM contact ids
                truth[("web_user", key)] = row["person_id"]
    mapped = wh.query("select source, source_record_id, customer_id from customer_identity_map")
    # Anonymous web ids that never carried a userId hold no identifying data at all: no
    # linkage method can place them. "resolvable" leaves them out; "overall" keeps them.
    unlinked = {
        rid
        for (rid,) in wh.query(
            "select source_record_id from int_identity_records_unioned "
            "where source = 'web_anonymous' and linked_user_id is null"
        )
    }
    pairs = [(cid, truth[(src, rid)], src == "web_anonymous" and rid in unlinked)
             for src, rid, cid in mapped if (src, rid) in truth]  # fmt: skip
    scores = pairwise_scores((p, t) for p, t, _ in pairs)
    resolvable = pairwise_scores((p, t) for p, t, skip in pairs if not skip)
    return {
        "resolvable": resolvable,
        "overall": scores,
        "unlinked_anonymous_ids": len(unlinked),
        "records_without_truth": len(mapped) - len(pairs),
    }
