"""The data-quality gate: expectation suites from ``expectations/*.json`` run by Great
Expectations 1.x against the warehouse tables.

GX's SQL datasource over ``duckdb_engine`` errors on every expectation (GX issues #10738,
#11579), so each suite's ``query`` is read through the project's own connection (DuckDB or
PostgreSQL) into pandas and validated with GX's pandas datasource, which evaluates every
expectation on the real rows. Each expectation carries ``meta.severity``: ``critical`` fails
the gate (render and export never run), ``warning`` is reported and the run goes on.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EMAIL_RE = re.compile(r"([^@\s\"',]{1,2})[^@\s\"',]*@([^\s\"',]+)")


class QualityGateError(RuntimeError):
    """A critical expectation failed."""


def mask_emails(text: str) -> str:
    """``jane.doe@example.com`` -> ``ja***@example.com``."""
    return EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


@dataclass
class Outcome:
    suite: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    element_count: int | None = None
    sample: list[Any] = field(default_factory=list)
    error: str | None = None

    def message(self) -> str:
        where = f"{self.suite}.{self.column}" if self.column else self.suite
        parts = [f"[{self.severity.upper()}] {self.expectation} on {where}"]
        if self.error:
            parts.append(f"error: {self.error}")
        if self.unexpected_count is not None:
            parts.append(f"{self.unexpected_count} of {self.element_count} rows unexpected")
        if self.observed is not None:
            parts.append(f"observed {self.observed}")
        if self.sample:
            parts.append("sample " + mask_emails(json.dumps(self.sample, default=str)))
        return "; ".join(parts)


def load_suites(directory: Path) -> list[dict[str, Any]]:
    suites = []
    for path in sorted(directory.glob("*.json")):
        data = json.loads(path.read_text())
        for exp in data.get("expectations", []):
            severity = exp.setdefault("meta", {}).setdefault("severity", "critical")
            if severity not in ("critical", "warning"):
                raise ValueError(f"{path.name}: severity must be critical or warning")
        suites.append(data)
    return suites


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def validate_frame(frame: Any, suite: dict[str, Any]) -> list[Outcome]:
    """Run one suite on a pandas DataFrame with Great Expectations."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - progress bars are cosmetic
        pass
    asset = ctx.data_sources.add_pandas("profilecast").add_dataframe_asset(suite["name"])
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(
        batch_parameters={"dataframe": frame}
    )
    gx_suite = ctx.suites.add(
        gx.ExpectationSuite(
            name=suite["name"],
            expectations=[
                {"type": e["type"], "kwargs": e["kwargs"], "meta": e.get("meta", {})}
                for e in suite["expectations"]
            ],
        )
    )
    result = batch.validate(
        gx_suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}
    )
    outcomes = []
    for r in result.results:
        cfg = r.expectation_config
        res = r.result or {}
        error = None
        if r.exception_info and r.exception_info.get("raised_exception"):
            error = str(r.exception_info.get("exception_message"))
        outcomes.append(
            Outcome(
                suite=suite["name"],
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                severity=(cfg.meta or {}).get("severity", "critical"),
                success=bool(r.success) and error is None,
                observed=_jsonable(res.get("observed_value")),
                unexpected_count=res.get("unexpected_count"),
                element_count=res.get("element_count"),
                sample=[_jsonable(v) for v in res.get("partial_unexpected_list") or []],
                error=error,
            )
        )
    return outcomes


def run_gate(
    wh: Any,
    suites_dir: Path,
    run_date: str,
    as_of: str,
    report_dir: Path | None = None,
    only: list[str] | None = None,
) -> list[Outcome]:
    """Run every suite; write JSON + HTML reports; raise QualityGateError on a critical failure."""
    outcomes: list[Outcome] = []
    for suite in load_suites(suites_dir):
        if only and suite["name"] not in only:
            continue
        query = suite["query"].replace("{run_date}", run_date).replace("{as_of}", as_of)
        try:
            frame = wh.df(query)
        except Exception as exc:  # noqa: BLE001 - a missing table is a failed check, reported
            outcomes.append(
                Outcome(suite["name"], "query", None, "critical", False, error=str(exc)[:500])
            )
            continue
        outcomes.extend(validate_frame(frame, suite))
    if report_dir is not None:
        write_reports(outcomes, report_dir, run_date)
    for o in outcomes:
        (log.info if o.success else log.error)(o.message())
    failed = [o for o in outcomes if not o.success and o.severity == "critical"]
    if failed:
        raise QualityGateError(
            f"quality gate failed: {len(failed)} critical expectation(s)\n"
            + "\n".join(o.message() for o in failed)
        )
    return outcomes


def write_reports(outcomes: list[Outcome], report_dir: Path, run_date: str) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "run_date": run_date,
        "success": all(o.success or o.severity != "critical" for o in outcomes),
        "results": [{**o.__dict__, "message": o.message()} for o in outcomes],
    }
    (report_dir / "validation.json").write_text(
        mask_emails(json.dumps(data, indent=2, default=str))
    )
    rows = "\n".join(
        f"<tr class={'ok' if o.success else o.severity}><td>{html.escape(o.suite)}</td>"
        f"<td>{html.escape(o.expectation)}</td><td>{html.escape(o.column or '')}</td>"
        f"<td>{o.severity}</td><td>{'pass' if o.success else 'FAIL'}</td>"
        f"<td>{html.escape(mask_emails(o.message()))}</td></tr>"
        for o in outcomes
    )
    page = report_dir / "index.html"
    page.write_text(
        "<!doctype html><meta charset=utf-8><title>profilecast quality gate "
        f"{run_date}</title><style>body{{font-family:sans-serif}}td{{padding:2px 8px}}"
        ".critical{background:#fdd}.warning{background:#ffd}.ok{background:#dfd}</style>"
        f"<h1>Quality gate {run_date}: {'PASSED' if data['success'] else 'FAILED'}</h1>"
        "<table><tr><th>suite<th>expectation<th>column<th>severity<th>result<th>detail"
        f"{rows}</table>"
    )
    return page
