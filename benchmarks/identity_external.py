"""Identity accuracy on Splink's labelled data sets, read in place from ../shared/external.

    .venv/bin/python benchmarks/identity_external.py [--thresholds 7,4,10] [fake_1000|historical_50k ...]

Each set is written as a CRM contacts drop (the only source), run through the same extract,
raw load and dbt build as production, and scored pairwise against its `cluster` column.
Each threshold (dbt var identity_match_threshold, a match weight) is a separate build; the
first is the project default.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "external" / "identity_labelled"
HEADER = ["contact_id", "email", "first_name", "last_name", "phone", "company", "job_title",
          "industry", "street", "city", "postcode", "state", "country", "birth_date",
          "lifecycle_stage", "created_at", "updated_at"]  # fmt: skip


def _fake_1000() -> tuple[list[list[str]], dict[str, str]]:
    rows, truth = [], {}
    with (EXTERNAL / "fake_1000.csv").open(newline="") as fh:
        for r in csv.DictReader(fh):
            rows.append([r["unique_id"], r["email"], r["first_name"], r["surname"], "", "", "", "",
                         "", r["city"], "", "", "", r["dob"], "", "", ""])  # fmt: skip
            truth[r["unique_id"]] = r["cluster"]
    return rows, truth


def _historical() -> tuple[list[list[str]], dict[str, str]]:
    import pandas as pd

    d = pd.read_parquet(EXTERNAL / "historical_figures_with_errors_50k.parquet")
    d = d.astype(object).where(d.notna(), "")
    rows, truth = [], {}
    for r in d.itertuples(index=False):
        rows.append([r.unique_id, "", r.first_name, r.surname, "", "", r.occupation, "", "",
                     r.birth_place, r.postcode_fake, "", "", r.dob, "", "", ""])  # fmt: skip
        truth[r.unique_id] = r.cluster
    return rows, truth


def run(name: str, threshold: float | None = None) -> dict:
    from profilecast import pipeline
    from profilecast.config import load_settings
    from profilecast.warehouse import connect
    from profilecast_dev.accuracy import pairwise_scores

    rows, truth = {"fake_1000": _fake_1000, "historical_50k": _historical}[name]()
    with tempfile.TemporaryDirectory() as tmp:
        drop = Path(tmp) / "drop" / "crm"
        drop.mkdir(parents=True)
        with (drop / "contacts.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(HEADER)
            w.writerows(rows)
        os.environ.update(
            PROFILECAST_HOME=str(Path(tmp) / "home"), PROFILECAST_SOURCES=str(Path(tmp) / "drop")
        )
        if threshold is None:
            os.environ.pop("PROFILECAST_DBT_VARS", None)
        else:
            os.environ["PROFILECAST_DBT_VARS"] = json.dumps({"identity_match_threshold": threshold})
        settings = load_settings()
        start, end = datetime(2099, 1, 1, tzinfo=UTC), datetime(2099, 1, 2, tzinfo=UTC)
        t0 = time.perf_counter()
        manifests = [pipeline.extract("crm", start, end, settings)]
        pipeline.load(manifests, end, settings)
        pipeline.transform(start, end, settings)
        elapsed = time.perf_counter() - t0
        with connect(settings, read_only=True) as wh:
            mapped = wh.query(
                "select source_record_id, customer_id from customer_identity_map where source = 'crm'"
            )
    scores = pairwise_scores((cid, truth[rid]) for rid, cid in mapped)
    return {
        "dataset": name,
        "match_threshold": "default" if threshold is None else threshold,
        "records": len(rows),
        "seconds_extract_load_build": round(elapsed, 1),
        **scores,
    }


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="*", default=["fake_1000", "historical_50k"])
    ap.add_argument("--thresholds", default="", help="extra match weights, e.g. 4,10")
    args = ap.parse_args()
    extra = [float(t) for t in args.thresholds.split(",") if t.strip()]
    for name in args.datasets:
        for threshold in [None, *extra]:
            print(json.dumps(run(name, threshold)), flush=True)
