"""Splink (the reference to beat) on the same labelled sets and machine, for a side-by-side.

    .venv/bin/python benchmarks/splink_reference.py [fake_1000|historical_50k ...]
        [--generator-home HOME --generator-drop DROP]

Splink is not a runtime dependency: this script needs `make benchmark-deps` (which installs
the pinned `splink` from requirements-bench.lock). The settings follow Splink's own example
examples for these two data sets: blocking rules, comparisons, prior, u from random pairs and
EM sessions as published; clusters by connected components over pairs at match probability
>= 0.95 (the examples' threshold), with 0.5, 0.99 and 0.999 reported as well. Records are scored pairwise
against the `cluster` column with the same function profilecast's report uses.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "external" / "identity_labelled"
CLUSTER_THRESHOLD = 0.95
THRESHOLDS = (0.95, 0.5, 0.99, 0.999)


def _model(name: str, db_api):
    """Settings and training as in Splink's own examples for these data sets
    (docs/demos/examples/duckdb/accuracy_analysis_from_labels_column and
    deduplicate_50k_synthetic): blocking rules, comparisons, the prior from deterministic
    rules, u from random pairs, then EM sessions without term frequencies."""
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on

    df = _load(name)
    if name == "fake_1000":
        settings = SettingsCreator(
            link_type="dedupe_only",
            blocking_rules_to_generate_predictions=[
                block_on("first_name"),
                block_on("surname"),
                block_on("dob"),
                block_on("email"),
            ],
            comparisons=[
                cl.ForenameSurnameComparison("first_name", "surname"),
                cl.DateOfBirthComparison("dob", input_is_string=True),
                cl.ExactMatch("city").configure(term_frequency_adjustments=True),
                cl.EmailComparison("email"),
            ],
        )
        linker = Linker(db_api.register(df, table_name=name), settings, log_level=None)
        linker.training.estimate_probability_two_random_records_match(
            [
                "l.first_name = r.first_name and levenshtein(r.dob, l.dob) <= 1",
                "l.surname = r.surname and levenshtein(r.dob, l.dob) <= 1",
                "l.first_name = r.first_name and levenshtein(r.surname, l.surname) <= 2",
                "l.email = r.email",
            ],
            recall=0.7,
        )
        linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=5)
        sessions = [block_on("dob"), block_on("email"), block_on("first_name", "surname")]
    else:
        blocking_rules = [
            block_on("substr(first_name,1,3)", "substr(surname,1,4)"),
            block_on("surname", "dob"),
            block_on("first_name", "dob"),
            block_on("postcode_fake", "first_name"),
            block_on("postcode_fake", "surname"),
            block_on("dob", "birth_place"),
            block_on("substr(postcode_fake,1,3)", "dob"),
            block_on("substr(postcode_fake,1,3)", "first_name"),
            block_on("substr(postcode_fake,1,3)", "surname"),
            block_on("substr(first_name,1,2)", "substr(surname,1,2)", "substr(dob,1,4)"),
        ]
        settings = SettingsCreator(
            link_type="dedupe_only",
            blocking_rules_to_generate_predictions=blocking_rules,
            comparisons=[
                cl.ForenameSurnameComparison(
                    "first_name",
                    "surname",
                    forename_surname_concat_col_name="first_name_surname_concat",
                ),
                cl.DateOfBirthComparison("dob", input_is_string=True),
                cl.PostcodeComparison("postcode_fake"),
                cl.ExactMatch("birth_place").configure(term_frequency_adjustments=True),
                cl.ExactMatch("occupation").configure(term_frequency_adjustments=True),
            ],
        )
        linker = Linker(db_api.register(df, table_name=name), settings, log_level=None)
        linker.training.estimate_probability_two_random_records_match(
            [
                block_on("first_name", "surname", "dob"),
                block_on("substr(first_name,1,2)", "surname", "substr(postcode_fake,1,2)"),
                block_on("dob", "postcode_fake"),
            ],
            recall=0.6,
        )
        linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=5)
        sessions = [block_on("first_name", "surname"), block_on("dob")]
    for rule in sessions:
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True
        )
    return df, linker


def _generator_model(home: Path, db_api):
    """Splink on profilecast's own CRM and billing records (the same normalised keys
    int_identity_records_unioned holds), doing both tiers: email and CRM-id equality are
    comparisons and blocking rules, beside the fuzzy attributes."""
    import duckdb
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    df = con.sql(
        "select record_key as unique_id, source, source_record_id, email_normalized as email,"
        " crm_contact_id, first_name_key as first_name, last_name_key as surname,"
        " birth_date as dob, postcode_key as postcode, city_key as city, phone_key as phone,"
        " employer_domain_key as employer from int_identity_records_unioned"
        " where source in ('crm', 'billing')"
    ).df()
    con.close()
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("email"),
            block_on("crm_contact_id"),
            block_on("phone"),
            block_on("first_name", "surname"),
            block_on("surname", "dob"),
            block_on("first_name", "dob"),
            block_on("postcode", "surname"),
            block_on("employer", "surname"),
        ],
        comparisons=[
            cl.ExactMatch("crm_contact_id"),
            cl.EmailComparison("email"),
            cl.ForenameSurnameComparison("first_name", "surname"),
            cl.DateOfBirthComparison("dob", input_is_string=False),
            cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            cl.ExactMatch("phone"),
            cl.ExactMatch("employer").configure(term_frequency_adjustments=True),
        ],
    )
    linker = Linker(db_api.register(df, table_name="generator"), settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        ["l.email = r.email", "l.crm_contact_id = r.crm_contact_id"], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=5)
    for rule in (block_on("first_name", "surname"), block_on("dob"), block_on("email")):
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule, estimate_without_term_frequencies=True
        )
    return df, linker


def _load(name: str):
    import pandas as pd

    if name == "fake_1000":
        return pd.read_csv(EXTERNAL / "fake_1000.csv", dtype=str)
    df = pd.read_parquet(EXTERNAL / "historical_figures_with_errors_50k.parquet")
    df["first_name_surname_concat"] = df["first_name"].str.cat(df["surname"], sep=" ")
    return df


def run(name: str, home: Path | None = None, drop: Path | None = None) -> dict:
    import splink
    from splink.backends.duckdb import DuckDBAPI

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    from profilecast_dev.accuracy import pairwise_scores

    t0 = time.perf_counter()
    if name == "generator":
        from profilecast_dev.generate import read_truth

        df, linker = _generator_model(home, DuckDBAPI())
        truth = {
            f"{r['source']}:{r['source_record_id']}": r["person_id"]
            for r in read_truth(drop)
            if (r["source"], r["entity"]) in {("crm", "contacts"), ("billing", "customers")}
        }
    else:
        df, linker = _model(name, DuckDBAPI())
        truth = dict(zip(df["unique_id"].astype(str), df["cluster"].astype(str), strict=True))
    predictions = linker.inference.predict(threshold_match_probability=0.01)
    result: dict[str, object] = {"dataset": name, "tool": f"splink {splink.__version__}",
                                 "records": len(df)}  # fmt: skip
    for threshold in THRESHOLDS:
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold
        ).as_pandas_dataframe()
        if threshold == CLUSTER_THRESHOLD:
            result["seconds_train_predict_cluster"] = round(time.perf_counter() - t0, 1)
        scores = pairwise_scores(
            (str(c), truth[str(u)])
            for u, c in zip(clusters["unique_id"], clusters["cluster_id"], strict=True)
        )
        key = "at_0.95" if threshold == CLUSTER_THRESHOLD else f"at_{threshold}"
        result[key] = {k: scores[k] for k in ("precision", "recall", "f1")}
    return result


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", nargs="*", help="default: both, unless --generator-home")
    ap.add_argument(
        "--generator-home",
        type=Path,
        help="a built PROFILECAST_HOME: adds a run "
        "on its CRM and billing records, scored against --generator-drop's truth/",
    )
    ap.add_argument("--generator-drop", type=Path)
    args = ap.parse_args()
    external = args.datasets or ([] if args.generator_home else ["fake_1000", "historical_50k"])
    for name in external:
        print(json.dumps(run(name)), flush=True)
    if args.generator_home:
        print(json.dumps(run("generator", args.generator_home, args.generator_drop)), flush=True)
