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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profilecast.config import quiet_gx

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
    table: str | None = None
    #: per group and unexpected value, in words (an expectation's ``meta.explain``)
    explanation: list[str] = field(default_factory=list)

    def message(self) -> str:
        if self.explanation:
            head = f"[{self.severity.upper()}] {self.expectation} on {self.suite}.{self.column}"
            return head + ": " + "; ".join(self.explanation)
        where = f"{self.suite}.{self.column}" if self.column else self.suite
        parts = [f"[{self.severity.upper()}] {self.expectation} on {where}"
                 + (f" (table {self.table})" if self.table else "")]  # fmt: skip
        if self.error:
            parts.append(f"error: {self.error}")
        if self.unexpected_count is not None:
            parts.append(f"{self.unexpected_count} of {self.element_count} rows unexpected")
        if self.observed is not None:
            parts.append(f"observed {self.observed}")
        if self.sample:
            parts.append("sample " + mask_emails(json.dumps(self.sample, default=str)))
        return "; ".join(parts)


def mask_id(value: object) -> str:
    """``C1234567`` -> ``C1***67``: enough to look up, not a list to copy."""
    text = str(value)
    return text[:2] + "***" + text[-2:] if len(text) > 4 else text[:1] + "***"


def explain(frame: Any, column: str, expectation: str, spec: dict[str, str]) -> list[str]:
    """A failed expectation in words: per ``spec['by']`` and unexpected value, how many rows
    and a masked sample of ``spec['sample']`` (``cart_reminder: 12 recipients opted out of
    promotions, e.g. C1***67, C2***01``)."""
    if expectation == "expect_column_values_to_be_null":
        bad = frame[frame[column].notna()]
    elif expectation == "expect_column_values_to_not_be_null":
        bad = frame[frame[column].isna()].assign(**{column: f"{column} is missing"})
    else:
        return []
    by, sample, noun = spec.get("by"), spec.get("sample"), spec.get("noun", "row")
    keys = [by, column] if by else [column]
    lines = []
    for key, group in bad.groupby(keys, dropna=False, sort=True):
        parts = key if isinstance(key, tuple) else (key,)
        n = len(group)
        what = f"{n} {noun}{'s' if n != 1 else ''} {parts[-1]}"
        if sample and sample in group:
            what += ", e.g. " + ", ".join(mask_id(v) for v in list(group[sample])[:3])
        lines.append(f"{parts[0]}: {what}" if by else what)
    return lines


def default_params() -> dict[str, str]:
    """Values the suites' queries may use, from the environment."""
    from profilecast.config import env_int

    return {"freshness_hours": str(env_int("PROFILECAST_FRESHNESS_HOURS", 48))}


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


def _context(docs_root: Path | None) -> Any:
    quiet_gx()
    import great_expectations as gx

    if docs_root is None:
        ctx = gx.get_context(mode="ephemeral")
    else:
        docs_root.mkdir(parents=True, exist_ok=True)
        ctx = gx.get_context(mode="file", project_root_dir=str(docs_root))
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - progress bars are cosmetic
        pass
    return ctx


def validate_frame(
    frame: Any, suite: dict[str, Any], ctx: Any = None, docs: bool = False
) -> list[Outcome]:
    """Run one suite on a pandas DataFrame with Great Expectations.

    With ``docs`` (and a file context) the run goes through a GX Checkpoint whose
    UpdateDataDocsAction renders the result into the context's Data Docs site.
    """
    import great_expectations as gx

    ctx = ctx or _context(None)
    source = ctx.data_sources.add_or_update_pandas("profilecast")
    try:
        asset = source.get_asset(suite["name"])
    except LookupError:
        asset = source.add_dataframe_asset(suite["name"])
    try:
        batch_def = asset.get_batch_definition("whole")
    except (KeyError, LookupError):
        batch_def = asset.add_batch_definition_whole_dataframe("whole")
    gx_suite = ctx.suites.add_or_update(
        gx.ExpectationSuite(
            name=suite["name"],
            expectations=[
                {"type": e["type"], "kwargs": e["kwargs"], "meta": e.get("meta", {})}
                for e in suite["expectations"]
            ],
        )
    )
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
    if docs:
        vd = ctx.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=suite["name"], data=batch_def, suite=gx_suite)
        )
        checkpoint = ctx.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"gate_{suite['name']}",
                validation_definitions=[vd],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                result_format=result_format,
            )
        )
        run = checkpoint.run(batch_parameters={"dataframe": frame})
        result = next(iter(run.run_results.values()))
    else:
        batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(gx_suite, result_format=result_format)
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
    docs_root: Path | None = None,
    params: dict[str, str] | None = None,
) -> list[Outcome]:
    """Run every suite; write JSON + HTML reports; raise QualityGateError on a critical failure.

    With ``docs_root`` the results are also rendered as GX Data Docs under it.
    """
    outcomes: list[Outcome] = []
    ctx = _context(docs_root)
    for suite in load_suites(suites_dir):
        if only and suite["name"] not in only:
            continue
        query = suite["query"].replace("{run_date}", run_date).replace("{as_of}", as_of)
        for key, value in {**default_params(), **(params or {})}.items():
            query = query.replace("{" + key + "}", value)
        try:
            frame = wh.df(query)
        except Exception as exc:  # noqa: BLE001 - a missing table is a failed check, reported
            outcomes.append(
                Outcome(suite["name"], "query", None, "critical", False, error=str(exc)[:500])
            )
            continue
        specs = {(e["type"], e["kwargs"].get("column")): e.get("meta", {}).get("explain")
                 for e in suite["expectations"]}  # fmt: skip
        for outcome in validate_frame(frame, suite, ctx, docs=docs_root is not None):
            outcome.table = suite.get("table")
            spec = specs.get((outcome.expectation, outcome.column))
            if spec and not outcome.success and outcome.column in frame:
                outcome.explanation = explain(frame, outcome.column, outcome.expectation, spec)
            outcomes.append(outcome)
    if report_dir is not None:
        write_reports(outcomes, report_dir, run_date, data_docs=_docs_index(docs_root))
    for o in outcomes:
        (log.info if o.success else log.error)(o.message())
    failed = [o for o in outcomes if not o.success and o.severity == "critical"]
    if failed:
        raise QualityGateError(
            f"quality gate failed: {len(failed)} critical expectation(s)\n"
            + "\n".join(o.message() for o in failed)
        )
    return outcomes


def _docs_index(docs_root: Path | None) -> str | None:
    if docs_root is None:
        return None
    index = docs_root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    return str(index) if index.exists() else None


def write_reports(
    outcomes: list[Outcome], report_dir: Path, run_date: str, data_docs: str | None = None
) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "run_date": run_date,
        "success": all(o.success or o.severity != "critical" for o in outcomes),
        "data_docs": data_docs,
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
        + (
            f'<p>Great Expectations Data Docs: <a href="{data_docs}">{data_docs}</a></p>'
            if data_docs
            else ""
        )
        + "<table><tr><th>suite<th>expectation<th>column<th>severity<th>result<th>detail"
        f"{rows}</table>"
    )
    return page
