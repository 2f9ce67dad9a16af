"""Identity accuracy, profilecast against Splink, side by side on each labelled set.

    .venv/bin/python benchmarks/identity_side_by_side.py [fake_1000|historical_50k ...]
        [--out DIR]

Runs `identity_external.run` (profilecast's extract, raw load and dbt build at the project's
default threshold) and `splink_reference.run` (Splink with its published settings, clusters
at match probability 0.95) on the same records, one after the other on this machine, and
writes `identity.json` and `identity.md`: precision, recall and F1 of both, and whether
profilecast's F1 reaches Splink's. Needs `make benchmark-deps` (the pinned Splink).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import identity_external  # noqa: E402
import splink_reference  # noqa: E402


def side_by_side(name: str) -> dict:
    ours = identity_external.run(name)
    theirs = splink_reference.run(name)
    reference = theirs[f"at_{splink_reference.CLUSTER_THRESHOLD}"]
    return {
        "dataset": name,
        "records": ours["records"],
        "profilecast": {k: ours[k] for k in ("precision", "recall", "f1")},
        "profilecast_seconds": ours["seconds_extract_load_build"],
        "splink": reference,
        "splink_version": theirs["tool"],
        "splink_seconds": theirs["seconds_train_predict_cluster"],
        "f1_at_least_splink": ours["f1"] >= reference["f1"],
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| data | records | profilecast P / R / F1 | Splink P / R / F1 | F1 >= Splink |",
        "|---|---:|---|---|---|",
    ]
    for r in rows:
        p, s = r["profilecast"], r["splink"]
        lines.append(
            f"| {r['dataset']} | {r['records']:,} "
            f"| {p['precision']:.4f} / {p['recall']:.4f} / **{p['f1']:.4f}** "
            f"| {s['precision']:.4f} / {s['recall']:.4f} / **{s['f1']:.4f}** "
            f"| {'yes' if r['f1_at_least_splink'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="*", default=["fake_1000", "historical_50k"])
    ap.add_argument("--out", type=Path, default=Path(".profilecast") / "bench-identity")
    args = ap.parse_args()
    rows = [side_by_side(name) for name in args.datasets]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "identity.json").write_text(json.dumps(rows, indent=2))
    table = markdown(rows)
    (args.out / "identity.md").write_text(table)
    print(table)
