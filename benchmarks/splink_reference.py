"""Splink (the reference to beat) on the same labelled sets and machine, for a side-by-side.

    .venv/bin/python benchmarks/splink_reference.py [fake_1000|historical_50k ...]

Splink is not a runtime dependency: this script needs `make benchmark-deps` (which installs
the pinned `splink` from requirements-bench.lock). The settings follow Splink's own example
scripts for these two data sets (deduplicate_1k_synthetic and deduplicate_50k_synthetic):
u from random sampling, m by expectation maximisation on two blocking rules, clusters by
connected components over pairs at match probability >= 0.95. Records are scored pairwise
against the `cluster` column with the same function profilecast's report uses.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

EXTERNAL = Path(__file__).resolve().parents[2] / "shared" / "external" / "identity_labelled"
CLUSTER_THRESHOLD = 0.95


def _settings(name: str):
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    if name == "fake_1000":
        return SettingsCreator(
            link_type="dedupe_only",
            blocking_rules_to_generate_predictions=[
                block_on("first_name", "dob"),
                block_on("surname"),
            ],
            comparisons=[
                cl.NameComparison("first_name"),
                cl.NameComparison("surname"),
                cl.DateOfBirthComparison("dob", input_is_string=True),
                cl.ExactMatch("city").configure(term_frequency_adjustments=True),
                cl.EmailComparison("email"),
            ],
        ), [block_on("first_name", "surname"), block_on("dob")]
    return SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("first_name", "surname"),
            block_on("surname", "dob"),
        ],
        comparisons=[
            cl.ForenameSurnameComparison(
                "first_name", "surname", forename_surname_concat_col_name="first_name_surname"
            ),
            cl.DateOfBirthComparison("dob", input_is_string=True),
            cl.PostcodeComparison("postcode_fake"),
            cl.ExactMatch("birth_place").configure(term_frequency_adjustments=True),
            cl.ExactMatch("occupation").configure(term_frequency_adjustments=True),
        ],
    ), [block_on("first_name", "surname"), block_on("dob")]


def _load(name: str):
    import pandas as pd

    if name == "fake_1000":
        return pd.read_csv(EXTERNAL / "fake_1000.csv", dtype=str)
    df = pd.read_parquet(EXTERNAL / "historical_figures_with_errors_50k.parquet")
    df["first_name_surname"] = df["first_name"].str.cat(df["surname"], sep=" ")
    return df


def run(name: str) -> dict:
    import splink
    from splink import Linker, block_on
    from splink.backends.duckdb import DuckDBAPI

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    from profilecast.identity import pairwise_scores

    df = _load(name)
    settings, em_rules = _settings(name)
    t0 = time.perf_counter()
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(df, table_name=name), settings, log_level=None)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "surname", "dob")], recall=0.6
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=0.2)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, CLUSTER_THRESHOLD
    ).as_pandas_dataframe()
    elapsed = time.perf_counter() - t0
    truth = dict(zip(df["unique_id"].astype(str), df["cluster"].astype(str), strict=True))
    scores = pairwise_scores(
        (str(c), truth[str(u)])
        for u, c in zip(clusters["unique_id"], clusters["cluster_id"], strict=True)
    )
    return {
        "dataset": name,
        "tool": f"splink {splink.__version__}",
        "records": len(df),
        "seconds_train_predict_cluster": round(elapsed, 1),
        **scores,
    }


if __name__ == "__main__":
    for name in sys.argv[1:] or ["fake_1000", "historical_50k"]:
        print(json.dumps(run(name)), flush=True)
