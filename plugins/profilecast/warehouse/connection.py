"""One connection wrapper over DuckDB or PostgreSQL.

SQL in this package is written once with ``%s`` placeholders and runs on both engines.
DuckDB allows a single writing process, so every connection is short-lived (opened in a
``with`` block) and the DAG puts the tasks that write into the ``profilecast_warehouse`` pool.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from profilecast.config import (
    Settings,
    duckdb_memory_limit,
    load_settings,
    postgres_params,
    raw_schema_override,
)


def raw_schema_name(settings: Settings) -> str:
    """``raw`` on DuckDB; ``<schema>_raw`` on PostgreSQL, so several projects can share it."""
    explicit = raw_schema_override()
    if explicit:
        return explicit
    if settings.dbt_target.startswith("postgres"):
        return f"{postgres_params()['schema']}_raw"
    return "raw"


class WarehouseError(RuntimeError):
    """Raised when the warehouse or dbt reports a failure."""


class Warehouse:
    """A thin connection wrapper; ``kind`` is ``duckdb`` or ``postgres``."""

    def __init__(self, settings: Settings, read_only: bool = False) -> None:
        self.settings = settings
        self.kind = "postgres" if settings.dbt_target.startswith("postgres") else "duckdb"
        if self.kind == "duckdb":
            import duckdb

            settings.home.mkdir(parents=True, exist_ok=True)
            path = settings.warehouse_path
            if read_only and not path.exists():
                # Nothing has been loaded yet: an in-memory database answers "empty".
                self.con = duckdb.connect(":memory:")
            else:
                self.con = duckdb.connect(str(path), read_only=read_only)
            self.con.execute("set timezone = 'UTC'")
            self.con.execute("set enable_progress_bar = false")
            # The same cap as dbt's profile (dbt_env passes it on): beyond it DuckDB spills.
            limit = duckdb_memory_limit()
            try:
                self.con.execute(f"set memory_limit = '{limit}'")
            except duckdb.Error as exc:
                self.con.close()
                raise WarehouseError(
                    f"PROFILECAST_DUCKDB_MEMORY_LIMIT={limit!r} is not a DuckDB memory size "
                    f"(e.g. 6GB, 512MB): {exc}"
                ) from exc
            self.schema = "main"
            self.raw_schema = raw_schema_name(settings)
        else:
            import psycopg2

            params = postgres_params()
            self.schema = str(params.pop("schema"))
            self.raw_schema = raw_schema_name(settings)
            self.con = psycopg2.connect(**params)
            self.con.autocommit = True
            self.execute(f"create schema if not exists {self.schema}")
            self.execute(f"set search_path to {self.schema}, public")
            self.execute("set timezone = 'UTC'")

    # -- basic access ---------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql.replace("%s", "?") if self.kind == "duckdb" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if self.kind == "duckdb":
            self.con.execute(self._sql(sql), list(params))
        else:
            with self.con.cursor() as cur:
                cur.execute(sql, tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        if self.kind == "duckdb":
            return self.con.execute(self._sql(sql), list(params)).fetchall()
        with self.con.cursor() as cur:
            cur.execute(sql, tuple(params))
            return cur.fetchall() if cur.description else []

    def df(self, sql: str, params: Sequence[Any] = ()):  # -> pandas.DataFrame
        import pandas as pd

        if self.kind == "duckdb":
            return self.con.execute(self._sql(sql), list(params)).df()
        with self.con.cursor() as cur:
            cur.execute(sql, tuple(params))
            cols = [d[0] for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=cols)

    def table_exists(self, name: str, schema: str | None = None) -> bool:
        schema = schema or self.schema
        rows = self.query(
            "select count(*) from information_schema.tables where table_schema = %s and table_name = %s",
            (schema, name),
        )
        return bool(rows and rows[0][0])

    def columns(self, name: str, schema: str | None = None) -> list[str]:
        rows = self.query(
            "select column_name from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            (schema or self.schema, name),
        )
        return [r[0] for r in rows]

    def close(self) -> None:
        self.con.close()

    # -- bulk load ------------------------------------------------------------------------
    def replace_rows(
        self,
        table: str,
        key_column: str,
        key_value: str,
        frame: Any,
        column_types: dict[str, str] | None = None,
    ) -> int:
        """Delete ``table`` rows where ``key_column = key_value`` and insert ``frame``.

        ``frame`` is a pandas DataFrame; the table is created on first use with text columns
        (or ``column_types``), and new columns are added as they appear (schema drift).
        """
        schema, name = self.ensure_table(table, list(frame.columns), column_types)
        self.begin()
        try:
            self.execute(f"delete from {schema}.{name} where {key_column} = %s", (key_value,))
            if len(frame):
                self._insert_frame(f"{schema}.{name}", frame)
            self.commit()
        except Exception:
            self.rollback()
            raise
        return len(frame)

    def ensure_table(
        self, table: str, cols: list[str], column_types: dict[str, str] | None = None
    ) -> tuple[str, str]:
        """Create ``table`` (text columns unless typed) or add the columns it lacks."""
        column_types = column_types or {}
        schema, _, name = table.rpartition(".")
        schema = schema or self.schema
        self.execute(f"create schema if not exists {schema}")
        if not self.table_exists(name, schema):
            defs = ", ".join(f'"{c}" {column_types.get(c, "text")}' for c in cols)
            self.execute(f"create table {schema}.{name} ({defs})")
        else:
            existing = set(self.columns(name, schema))
            for c in cols:
                if c not in existing:
                    self.execute(
                        f'alter table {schema}.{name} add column "{c}" {column_types.get(c, "text")}'
                    )
        return schema, name

    def load_parquet(
        self, table: str, parts: list[str], cols: list[str], constants: dict[str, str], key: str
    ) -> int:
        """Replace the rows where ``key = constants[key]`` with the Parquet parts, streaming.

        DuckDB reads the files itself; PostgreSQL gets one COPY per part (bounded memory).
        """
        schema, name = self.ensure_table(table, [*cols, *constants])
        target = f"{schema}.{name}"
        collist = ", ".join(f'"{c}"' for c in [*cols, *constants])
        self.begin()
        try:
            self.execute(f"delete from {target} where {key} = %s", (constants[key],))
            if parts and self.kind == "duckdb":
                files = ", ".join("'" + p.replace("'", "''") + "'" for p in parts)
                select = ", ".join([f'"{c}"' for c in cols] + ["?" for _ in constants])
                self.con.execute(
                    f"insert into {target} ({collist}) select {select} "
                    f"from read_parquet([{files}], union_by_name = true)",
                    list(constants.values()),
                )
            elif parts:
                import pyarrow.parquet as pq

                for part in parts:
                    frame = pq.read_table(part, columns=cols).to_pandas()
                    for c, v in constants.items():
                        frame[c] = v
                    self._insert_frame(target, frame)
            n = self.query(f"select count(*) from {target} where {key} = %s", (constants[key],))
            self.commit()
        except Exception:
            self.rollback()
            raise
        return int(n[0][0])

    def _insert_frame(self, table: str, frame: Any) -> None:
        collist = ", ".join(f'"{c}"' for c in frame.columns)
        if self.kind == "duckdb":
            self.con.register("_pc_frame", frame)
            try:
                self.con.execute(f"insert into {table} ({collist}) select {collist} from _pc_frame")
            finally:
                self.con.unregister("_pc_frame")
            return
        buf = io.StringIO()
        frame.to_csv(buf, index=False, header=False, na_rep="\\N")
        buf.seek(0)
        with self.con.cursor() as cur:
            cur.copy_expert(
                f"copy {table} ({collist}) from stdin with (format csv, null '\\N')",
                buf,
            )

    def begin(self) -> None:
        if self.kind == "duckdb":
            self.con.execute("begin transaction")
        else:
            self.con.autocommit = False

    def commit(self) -> None:
        if self.kind == "duckdb":
            self.con.execute("commit")
        else:
            self.con.commit()
            self.con.autocommit = True

    def rollback(self) -> None:
        if self.kind == "duckdb":
            self.con.execute("rollback")
        else:
            self.con.rollback()
            self.con.autocommit = True


@contextmanager
def connect(settings: Settings | None = None, read_only: bool = False) -> Iterator[Warehouse]:
    """Open the configured warehouse for the duration of a ``with`` block."""
    wh = Warehouse(settings or load_settings(), read_only=read_only)
    try:
        yield wh
    finally:
        wh.close()
