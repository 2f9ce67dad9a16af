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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from profilecast.flows.definition import Flow
from profilecast.flows.store import FlowStore, State
from profilecast.sources.validation import format_timestamp

MANIFEST_VERSION = "profilecast.flow_manifest/1"


@dataclass
class Pending:
    """A rendered step waiting for its batch: the message and the state after it."""

    message: dict[str, Any]
    before: State
    after: State
    step_id: str


class Outbox:
    """Writes claimed batches to the export target and keeps each day's manifest."""

    def __init__(self, flows: dict[str, Flow], store: FlowStore, target: Any) -> None:
        self.flows = flows
        self.store = store
        self.target = target

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
            for chunk, lines in batch_files(fmt, [p.message for p in items]):
                seq = self.store.next_batch_seq(flow_id, day)
                file = f"flows/{flow_id}/{day}/batch-{seq:05d}.jsonl.gz"
                data = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
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
                self.target.write(file, data, "application/gzip", overwrite=True)
                self.store.commit_batch(batch_id, stamp)
                self.manifest(flow_id, day)
                out.batches.append(self.target.location(file))
                out.sent[flow_id] = out.sent.get(flow_id, 0) + len(chunk)

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
