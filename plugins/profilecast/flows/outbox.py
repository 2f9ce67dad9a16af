"""The flows' outbox: claimed batches written to the export target, exactly once.

A batch is claimed first (its bytes, its ledger rows and the state moves commit in one
SQLite transaction), then written under a deterministic name and marked committed; the
day's manifest lists the committed batches. ``recover`` rewrites what a crash left claimed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from profilecast.experiments.definition import HOLDOUT
from profilecast.flows.definition import Flow
from profilecast.flows.store import FlowStore, State
from profilecast.sources.validation import format_timestamp

MANIFEST_VERSION = "profilecast.flow_manifest/1"
#: the flow history's detail for a step skipped because the customer is in its holdout
HOLDOUT_NOTE = "holdout of experiment "


@dataclass
class Pending:
    """A rendered step waiting for its batch: the message and the state after it."""

    message: dict[str, Any]
    before: State
    after: State
    step_id: str


class Outbox:
    """Writes claimed batches to the export target and keeps each day's manifest."""

    def __init__(self, flows: dict[str, Flow], store: FlowStore, target: Any,
                 sources: Any = None) -> None:  # fmt: skip
        self.flows = flows
        self.store = store
        self.target = target
        #: where the message log goes (the ``sends`` source's drop); None: not logged
        self.sources = sources

    def recover(self, now: datetime) -> int:
        """Write the batches a crashed advance claimed but did not finish."""
        done = 0
        for batch_id, flow_id, day, file, data in self.store.pending_batches():
            self.target.write(file, data, "application/gzip", overwrite=True)
            self.store.commit_batch(batch_id, format_timestamp(now))
            self.manifest(flow_id, day)
            done += 1
        return done

    def export(self, pending: list[Pending], now: datetime, out: Any) -> None:
        from profilecast.export.formats import batch_files

        stamp = format_timestamp(now)
        day = now.astimezone(UTC).strftime("%Y-%m-%d")
        by_flow: dict[tuple[str, str], list[Pending]] = {}
        for p in pending:
            fmt = self.flows[p.before.flow_id].steps[p.before.step_index].message.format
            by_flow.setdefault((p.before.flow_id, fmt), []).append(p)
        for (flow_id, fmt), items in sorted(by_flow.items()):
            items.sort(key=lambda p: p.message["message_key"])
            index = {id(p.message): p for p in items}
            for chunk, raw, _ in batch_files(fmt, [p.message for p in items]):
                seq = self.store.next_batch_seq(flow_id, day)
                file = f"flows/{flow_id}/{day}/batch-{seq:05d}.jsonl.gz"
                data = gzip.compress(raw, mtime=0)
                digest = hashlib.sha256(data).hexdigest()
                kind = self.flows[flow_id].kind
                with self.store.conn:  # claim: bytes, ledger rows and state moves together
                    batch_id = self.store.add_batch(flow_id, day, file, fmt, len(chunk), digest,
                                                    data, stamp)  # fmt: skip
                    for msg in chunk:
                        p = index[id(msg)]
                        self.store.add_send(msg["message_key"], p.before, p.step_id, kind,
                                            batch_id, stamp)  # fmt: skip
                        self.store.save(p.after, stamp)
                        self.store.history(p.before, stamp, p.step_id, "sent", msg["message_key"])
                        if p.after.status == "completed":
                            self.store.history(p.after, stamp, None, "completed")
                            out.completed += 1
                self._log(flow_id, day, seq, chunk, index, stamp)
                self.target.write(file, data, "application/gzip", overwrite=True)
                self.store.commit_batch(batch_id, stamp)
                self.manifest(flow_id, day)
                out.batches.append(self.target.location(file))
                out.sent[flow_id] = out.sent.get(flow_id, 0) + len(chunk)

    def _log(self, flow_id: str, day: str, seq: int, chunk: list[dict[str, Any]],
             index: dict[int, Pending], stamp: str) -> None:  # fmt: skip
        """The claimed batch's messages in the message log (results join to it)."""
        if self.sources is None:
            return
        from profilecast.export.message_log import log_record, write_log

        flow = self.flows[flow_id]
        records = []
        for msg in chunk:
            p = index[id(msg)]
            days = flow.steps[p.before.step_index].message.arms.attribution_days
            records.append(log_record(msg, day, stamp.replace("T", " ")[:19], days))
        write_log(self.sources, f"flows/{flow_id}/{day}-batch-{seq:05d}", records)

    def log_holdouts(self, now: datetime) -> None:
        """Write today's and yesterday's held-out flow steps (from the flow history, where
        they commit with the state) to the message log, one file per flow and day."""
        if self.sources is None:
            return
        from profilecast.export.message_log import log_record, write_log
        from profilecast.flows.engine import flow_message_key

        for back in (1, 0):
            day = (now.astimezone(UTC) - timedelta(days=back)).strftime("%Y-%m-%d")
            by_flow: dict[str, list[dict[str, Any]]] = {}
            for flow_id, subject, seq, at, step_id, detail in self.store.skipped_on(
                day, HOLDOUT_NOTE
            ):
                flow = self.flows.get(flow_id)
                if flow is None:
                    continue
                step = next((x for x in flow.steps if x.step_id == step_id), None)
                days = step.message.arms.attribution_days if step else 5
                msg = {"message_key": flow_message_key(flow_id, subject, seq, step_id),
                       "campaign_id": flow_id, "flow_step": step_id, "customer_id": subject,
                       "experiment_id": detail[len(HOLDOUT_NOTE):], "variant": HOLDOUT}  # fmt: skip
                by_flow.setdefault(flow_id, []).append(log_record(msg, day, at[:19], days))
            for flow_id, records in by_flow.items():
                write_log(self.sources, f"flows/{flow_id}/{day}-holdout", records)

    def manifest(self, flow_id: str, day: str) -> None:
        rows = self.store.committed_batches(flow_id, day)
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "flow_id": flow_id,
            "day": day,
            "batches": [
                {"file": Path(f).name, "format": fmt, "rows": n, "sha256": sha, "committed_at": at}
                for f, fmt, n, sha, at in rows
            ],
            "total_rows": sum(r[2] for r in rows),
        }
        self.target.write(f"flows/{flow_id}/{day}/manifest.json",
                          json.dumps(manifest, indent=2).encode(), "application/json",
                          overwrite=True)  # fmt: skip
