"""Print how each third-party fixture set loads: rows read/loaded/quarantined, top reasons.

.venv/bin/python benchmarks/external_report.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import external_inputs as ext  # noqa: E402
from tests.apiserver import API_KEY, FakeApi  # noqa: E402


def main() -> None:
    import json
    import os

    from profilecast.config import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PROFILECAST_HOME"] = str(Path(tmp) / "home")
        settings = load_settings()
        report = {
            "segment_spec": ext.segment_spec(settings, Path(tmp)),
            "segment_go": ext.segment_go(settings),
            "snowplow": ext.snowplow(settings),
            "salesforce_contacts": ext.salesforce(settings),
            "hubspot_contact_table": ext.hubspot_tables(settings),
        }
        with FakeApi() as srv:
            os.environ["AIRFLOW_CONN_BILLING_API"] = json.dumps(
                {"conn_type": "http", "host": srv.url, "password": API_KEY}
            )
            for entity, r in ext.stripe_api(settings, srv).items():
                report[f"stripe_fixtures3_{entity}"] = r
    for name, r in report.items():
        print(f"{name:32s} read {r['rows_read']:>5}  loaded {r['rows_loaded']:>5}  "
              f"quarantined {r['rows_quarantined']:>4}  {r['reasons']}")  # fmt: skip


if __name__ == "__main__":
    main()
