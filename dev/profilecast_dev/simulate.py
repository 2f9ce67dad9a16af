"""``profilecast simulate``: many days in a row under a real Airflow scheduler, checked.

It generates a history plus one increment per day (``generate --days-of-change``), starts
the scheduler, DAG processor, triggerer and API server (:class:`LocalAirflow`), and for each
day drops that day's increment into the source folders and runs the day's interval. Along
the way it reruns one finished interval (a "Clear") and backfills an earlier one. After every
run it checks the invariants below against the warehouse, the export folder and the
generator's ground truth, and prints them as a table.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from profilecast.config import Settings
from profilecast.interval import Interval

from profilecast_dev.experiment_checks import check_holdout, check_results

INVARIANTS = (
    ("runs", "every DAG run succeeded"),
    ("exactly_once", "no message_key exported twice"),
    ("frequency_cap", "no campaign more often than its frequency cap"),
    ("opt_outs", "nobody exported on/after their opt-out day"),
    ("stable_ids", "customer ids stable unless a recorded merge or split"),
    ("row_accounting", "rows read = loaded + quarantined; no re-quarantine"),
    ("updates", "updates to old CRM/billing records reach profiles that day"),
    ("manifests", "every exported batch listed in a manifest"),
    ("holdout", "no held-out customer exported for that campaign and day"),
    ("results", "campaign_results matches the simulated ESP's outcomes"),
)


@dataclass
class Check:
    ok: bool
    detail: str


@dataclass
class Step:
    label: str
    interval: Interval
    run: Any
    seconds: float
    checks: dict[str, Check] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks.values())


@dataclass
class World:
    """What the checks remember between steps."""

    data: Path
    settings: Settings
    identity: dict[tuple[str, str], str] = field(default_factory=dict)
    truth_merges: int = 0
    #: run date -> the simulated ESP's outcome per message of that day
    outcomes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# Feeding the sources
# ------------------------------------------------------------------------------------------
def feed_increment(data: Path, sources: Path, ds: str) -> int:
    """Drop one day's increment into the source folders as ``<source>/<entity>/<ds>.<ext>``
    (the layout a daily export lands in); returns the files dropped."""
    inc = data / "increments" / ds
    n = 0
    if not inc.exists():
        return 0
    for path in sorted(inc.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(inc)
        source, name = rel.parts[0], rel.parts[-1]
        entity, _, ext = name.partition(".")
        target = sources / source / entity / f"{ds}.{ext}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        n += 1
    return n


def seed_sources(data: Path, sources: Path) -> None:
    """The history, as the first drop (everything but the increments and the truth)."""
    for child in data.iterdir():
        if child.name in ("increments", "truth"):
            continue
        if child.is_dir():
            shutil.copytree(child, sources / child.name, dirs_exist_ok=True)


# ------------------------------------------------------------------------------------------
# Invariants
# ------------------------------------------------------------------------------------------
def _truth_changes(data: Path) -> list[dict[str, str]]:
    path = data / "truth" / "changes.csv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _exported(settings: Settings) -> tuple[list[dict[str, Any]], list[str]]:
    """Every exported message as the ESP sees it (manifest -> files), and the problems."""
    root = settings.home / "exports"
    messages: list[dict[str, Any]] = []
    problems: list[str] = []
    if not root.exists():
        return messages, problems
    for folder in sorted({p.parent for p in root.rglob("batch-*.jsonl.gz")}):
        manifest_path = folder / "manifest.json"
        files = {p.name for p in folder.glob("batch-*.jsonl.gz")}
        if not manifest_path.exists():
            problems.append(f"{folder.relative_to(root)}: {len(files)} batch(es), no manifest")
            continue
        manifest = json.loads(manifest_path.read_text())
        listed = {b["file"] for b in manifest["batches"]}
        if files - listed:
            problems.append(
                f"{folder.relative_to(root)}: not in manifest: {sorted(files - listed)}"
            )
        campaign, ds = folder.parent.name, folder.name
        for batch in manifest["batches"]:
            path = folder / batch["file"]
            if not path.exists():
                problems.append(
                    f"{folder.relative_to(root)}: manifest lists missing {batch['file']}"
                )
                continue
            for line in gzip.decompress(path.read_bytes()).decode().splitlines():
                for key, to in _keys(batch["format"], json.loads(line)):
                    messages.append({"message_key": key, "to": to, "campaign_id": campaign,
                                     "run_date": ds})  # fmt: skip
    return messages, problems


def _keys(fmt: str, obj: dict[str, Any]) -> list[tuple[str, str]]:
    from profilecast.export.formats import FORMATS

    return [(m["message_key"], m["to"]) for m in FORMATS[fmt].read(obj)]


def check_day(world: World, step: Step, all_steps: list[Step]) -> dict[str, Check]:
    import duckdb
    from profilecast.campaigns import load_campaigns

    settings = world.settings
    checks: dict[str, Check] = {}
    failed_runs = [s.label for s in all_steps if s.run.state != "success"]
    checks["runs"] = Check(not failed_runs, f"{len(all_steps)} run(s)" if not failed_runs
                           else f"failed: {', '.join(failed_runs)}; {step.run.failed_tasks}")  # fmt: skip

    messages, problems = _exported(settings)
    keys = Counter(m["message_key"] for m in messages)
    dupes = sum(n - 1 for n in keys.values() if n > 1)
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        ledger = con.execute(
            "select message_key, campaign_id, customer_id, cast(run_date as varchar) "
            "from send_ledger"
        ).fetchall() if _has(con, "send_ledger") else []  # fmt: skip
        ledger_keys = {r[0] for r in ledger}
        missing = len(ledger_keys - set(keys))
        checks["exactly_once"] = Check(
            dupes == 0 and missing == 0,
            f"{len(keys)} keys in files, {len(ledger_keys)} in ledger, {dupes} duplicate(s), "
            f"{missing} ledger key(s) missing from files",
        )
        checks["manifests"] = Check(
            not problems, "all listed" if not problems else "; ".join(problems[:3])
        )
        checks["holdout"] = Check(*check_holdout(con, messages))
        checks["results"] = Check(*check_results(con, world.outcomes, step.interval.ds))

        caps = {c.campaign_id: c.frequency_cap_days for c in load_campaigns(settings.campaigns_dir)}
        sends: dict[tuple[str, str], list[date]] = defaultdict(list)
        for _key, campaign, customer, ds in ledger:
            sends[(customer, campaign)].append(date.fromisoformat(ds[:10]))
        too_close = 0
        for (_customer, campaign), days in sends.items():
            days.sort()
            cap = caps.get(campaign, 0)
            too_close += sum(
                1 for a, b in zip(days, days[1:], strict=False) if (b - a).days < max(cap, 1)
            )
        checks["frequency_cap"] = Check(
            too_close == 0, f"{len(ledger)} sends, {too_close} inside a cap"
        )

        # Opt-outs from truth: the customer holding that ESP address gets nothing on or after.
        changes = _truth_changes(world.data)
        optouts = [c for c in changes if c["kind"] in ("unsubscribe", "spamreport", "bounce")
                   and c["day"] <= step.interval.ds]  # fmt: skip
        esp_ids = dict(con.execute(
            "select source_record_id, customer_id from customer_identity_map where source = 'esp'"
        ).fetchall())  # fmt: skip
        by_customer_day: dict[str, list[date]] = defaultdict(list)
        for _key, _campaign, customer, ds in ledger:
            by_customer_day[customer].append(date.fromisoformat(ds[:10]))
        violations = []
        for c in optouts:
            email = json.loads(c["detail"])["email"].strip().lower()
            customer = esp_ids.get(email)
            day = date.fromisoformat(c["day"])
            if customer and any(d >= day for d in by_customer_day.get(customer, [])):
                violations.append(f"{email} ({c['kind']} {c['day']})")
        to_by_day = {(m["to"].strip().lower(), m["run_date"]) for m in messages}
        for c in optouts:
            email = json.loads(c["detail"])["email"].strip().lower()
            if any(addr == email and ds >= c["day"] for addr, ds in to_by_day):
                violations.append(f"{email} addressed after {c['kind']} {c['day']}")
        checks["opt_outs"] = Check(
            not violations,
            f"{len(optouts)} opt-out(s) so far, {len(violations)} exported after"
            + (f": {violations[:3]}" if violations else ""),
        )

        # Stable ids: a record keeps its customer id unless the merge or split history
        # says why.
        now = {(s, r): c for s, r, c in con.execute(
            "select source, source_record_id, customer_id from customer_identity_map").fetchall()}  # fmt: skip
        merges = set(con.execute(
            "select merged_customer_id, survivor_customer_id from identity_merge_history"
        ).fetchall()) if _has(con, "identity_merge_history") else set()  # fmt: skip
        splits = set(con.execute(
            "select split_customer_id, new_customer_id from identity_split_history"
        ).fetchall()) if _has(con, "identity_split_history") else set()  # fmt: skip
        changed = [(k, world.identity[k], c) for k, c in now.items()
                   if k in world.identity and world.identity[k] != c]  # fmt: skip
        unexplained = [x for x in changed if (x[1], x[2]) not in merges | splits]
        split_moves = sum(1 for x in changed if (x[1], x[2]) in splits)
        truth_merges = [
            c for c in changes if c["kind"] == "crm_merge" and c["day"] <= step.interval.ds
        ]
        joined = sum(
            1 for c in truth_merges
            if now.get(("crm", c["record_id"])) is not None
            and now.get(("crm", c["record_id"])) == now.get(("crm", json.loads(c["detail"])["survivor_contact_id"]))
        )  # fmt: skip
        checks["stable_ids"] = Check(
            not unexplained,
            f"{len(changed)} id change(s) ({split_moves} by a recorded split), "
            f"{len(unexplained)} unexplained; truth merges "
            f"{joined}/{len(truth_merges)} joined"
            + (f"; e.g. {unexplained[:2]}" if unexplained else ""),
        )
        world.identity = now

        # Row accounting for this step's batches; no fingerprint quarantined twice.
        stamp = step.interval.stamp
        rows = con.execute(
            "select batch_id, rows_read, rows_loaded, rows_quarantined, "
            "coalesce(rows_previously_quarantined, 0) from load_batches where batch_id like ?",
            [f"%__{stamp}"],
        ).fetchall()
        bad = [r[0] for r in rows if r[1] != r[2] + r[3]]
        twice = con.execute(
            "select count(*) from (select fingerprint from quarantine where fingerprint is not null "
            "group by fingerprint having count(distinct batch_id) > 1) as t"
        ).fetchall()[0][0]
        read = sum(r[1] for r in rows)
        checks["row_accounting"] = Check(
            not bad and twice == 0 and bool(rows),
            f"{len(rows)} batches, read {read:,} = loaded {sum(r[2] for r in rows):,} + "
            f"quarantined {sum(r[3] for r in rows):,}; previously quarantined skipped "
            f"{sum(r[4] for r in rows):,}; re-quarantined {twice}",
        )

        # Updates of the day reach customer_profiles.
        latest = max(s.interval.ds for s in all_steps)
        checks["updates"] = _check_updates(con, changes, step.interval.ds, latest)
    finally:
        con.close()
    return checks


def _has(con: Any, table: str) -> bool:
    return bool(con.execute(
        "select 1 from information_schema.tables where table_name = ?", [table]).fetchall())  # fmt: skip


UPDATE_KINDS = ("crm_email_change", "cancellation", "plan_change", "billing_email_change")


def _check_updates(con: Any, changes: list[dict[str, str]], ds: str, latest: str) -> Check:
    """The day's updates are in the profiles (or staging, for billing addresses). On a rerun
    or backfill of an earlier day, a record changed again on a later day that has already
    run shows that later state, rightly: those changes are not judged."""
    from profilecast_dev.generate import PLANS

    later = {(c["kind"] in ("cancellation", "plan_change"), c["record_id"]) for c in changes
             if ds < c["day"] <= latest and c["kind"] in UPDATE_KINDS}  # fmt: skip
    todays = [c for c in changes if c["day"] == ds and c["kind"] in UPDATE_KINDS
              and (c["kind"] in ("cancellation", "plan_change"), c["record_id"]) not in later]  # fmt: skip
    if not todays:
        return Check(True, "no update that day")
    ids = {(s, r): c for s, r, c in con.execute(
        "select source, source_record_id, customer_id from customer_identity_map").fetchall()}  # fmt: skip
    subs = dict(con.execute(
        "select subscription_id, billing_customer_id from stg_billing__subscriptions").fetchall())  # fmt: skip
    profiles = {r[0]: r[1:] for r in con.execute(
        "select customer_id, lower(email), subscription_status, subscription_plan "
        "from customer_profiles").fetchall()}  # fmt: skip
    plan_names = {p[0]: p[1] for p in PLANS}
    missed = []
    for c in todays:
        detail = json.loads(c["detail"])
        if c["kind"] == "crm_email_change":
            prof = profiles.get(ids.get(("crm", c["record_id"])))
            if not prof or prof[0] != detail["email"].lower():
                missed.append(f"{c['kind']} {c['record_id']}: {prof[0] if prof else None}")
        elif c["kind"] == "billing_email_change":
            key = ("billing", c["record_id"])
            if key not in ids:
                missed.append(f"{c['kind']} {c['record_id']}: no identity")
            elif not con.execute(
                "select 1 from stg_billing__customers where billing_customer_id = ? "
                "and lower(email) = ?", [c["record_id"], detail["email"].strip().lower()],
            ).fetchall():  # fmt: skip
                missed.append(f"{c['kind']} {c['record_id']}: old address in staging")
        else:
            customer = ids.get(("billing", subs.get(c["record_id"], "")))
            prof = profiles.get(customer)
            want_status = detail["status"]
            want_plan = plan_names.get(detail.get("plan", ""), None)
            if not prof or prof[1] != want_status or (want_plan and prof[2] != want_plan):
                missed.append(f"{c['kind']} {c['record_id']}: {prof[1:] if prof else None}")
    return Check(not missed, f"{len(todays) - len(missed)}/{len(todays)} arrived"
                 + (f"; missed {missed[:3]}" if missed else ""))  # fmt: skip


# ------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------
def plan_steps(first: date, days: int) -> list[tuple[str, str, date]]:
    """(label, action, day): the daily runs, with one rerun of a finished interval (the
    second, after the third day) and one backfill of an earlier interval (the first, after
    the fourth day, or after the third when there are only three)."""
    steps: list[tuple[str, str, date]] = []
    for k in range(days):
        day = first + timedelta(days=k)
        steps.append((f"day {k + 1} {day}", "run", day))
        if k == 2:
            steps.append((f"rerun {first + timedelta(days=1)}", "rerun", first + timedelta(days=1)))
        if k == min(3, days - 1) and k >= 2:
            steps.append((f"backfill {first}", "backfill", first))
    return steps


def simulate(
    settings: Settings,
    contacts: int,
    days: int,
    seed: int,
    end_date: date,
    printer: Any = print,
) -> list[Step]:
    """Run the simulation on ``settings.home`` (emptied first); returns the checked steps."""
    from profilecast.local_airflow import LocalAirflow

    from profilecast_dev.esp_world import feedback
    from profilecast_dev.generate import generate

    home = settings.home
    if home.exists():
        shutil.rmtree(home)
    data = home / "generated"
    sources = Path(settings.sources)
    t0 = time.perf_counter()
    generate(data, contacts=contacts, seed=seed, end_date=end_date - timedelta(days=1),
             days_of_change=days)  # fmt: skip
    seed_sources(data, sources)
    printer(f"generated {contacts:,} contacts and {days} daily increment(s) "
            f"in {time.perf_counter() - t0:.1f}s")  # fmt: skip
    world = World(data=data, settings=settings)
    steps: list[Step] = []
    runs: dict[date, str] = {}
    with LocalAirflow(settings) as af:
        printer(f"Airflow scheduler, dag-processor, triggerer and api-server up (port {af.port})")
        for label, action, day in plan_steps(end_date, days):
            interval = Interval.day(day)
            started = time.monotonic()
            if action == "run":
                feed_increment(data, sources, interval.ds)
                run_id = af.trigger(interval)
                runs[day] = run_id
            elif action == "rerun":
                run_id = runs[day]
                af.clear(run_id)
            else:
                run_id = af.backfill(interval)
            result = af.wait(run_id, since=started)
            step = Step(label, interval, result, time.monotonic() - started)
            steps.append(step)
            if action == "run" and result.state == "success":
                world.outcomes[interval.ds] = feedback(
                    sources,
                    home / "exports",
                    settings.warehouse_path,
                    interval.ds,
                    data / "truth",
                    seed,
                )  # the ESP's events and the orders land before the next day's run
            step.checks = check_day(world, step, steps)
            report = home / "reports" / "simulation.txt"
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(render_table(steps) + "\n")  # readable while it runs
            printer(f"{label:24s} {result.state:8s} {step.seconds:7.1f}s  "
                    + ("ok" if step.ok else "FAILED: " + ", ".join(
                        k for k, c in step.checks.items() if not c.ok)))  # fmt: skip
            if result.state != "success":
                break
    return steps


def render_table(steps: list[Step]) -> str:
    """The invariants as a table: one row per invariant, the last step's detail, and how
    many steps passed it."""
    lines = [f"     {'invariant':62s} {'steps ok':>9s}  last detail", "-" * 120]
    for key, text in INVARIANTS:
        passed = sum(1 for s in steps if s.checks.get(key, Check(False, "")).ok)
        last = steps[-1].checks.get(key) if steps else None
        mark = "PASS" if passed == len(steps) and steps else "FAIL"
        lines.append(
            f"{mark} {text:62s} {passed:>4d}/{len(steps):<4d}  {last.detail if last else ''}"
        )
    lines.append("-" * 120)
    keys = [k for k, _ in INVARIANTS]
    lines.append(
        f"  {'step':24s} {'state':8s} {'wall':>8s}  " + " ".join(f"{k[:8]:>8s}" for k in keys)
    )
    for s in steps:
        marks = " ".join(
            f"{'ok' if s.checks.get(k, Check(False, '')).ok else 'FAIL':>8s}" for k in keys
        )
        lines.append(f"  {s.label:24s} {s.run.state:8s} {s.seconds:7.1f}s  {marks}")
    lines.append("-" * 120)
    for s in steps:
        for k in ("row_accounting", "updates", "opt_outs", "stable_ids"):
            c = s.checks.get(k)
            if c:
                lines.append(f"  {s.label:24s} {k:15s} {c.detail}")
    return "\n".join(lines)
