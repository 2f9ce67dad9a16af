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
    """What every engine's connection offers; ``kind`` is ``duckdb`` or ``postgres``.

    The engines differ in how they connect, bind parameters, bulk-load and run a
    transaction; everything else (schema drift, replacing a batch's rows) is written once
    here over those few primitives.
    """

    kind = ""
    schema = ""
    raw_schema = ""

    def __init__(self, settings: Settings, read_only: bool = False) -> None:
        self.settings = settings
        self.read_only = read_only
        self.raw_schema = raw_schema_name(settings)

    # -- per engine -----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def df(self, sql: str, params: Sequence[Any] = ()) -> Any:  # -> pandas.DataFrame
        raise NotImplementedError

    def _insert_frame(self, table: str, frame: Any) -> None:
        raise NotImplementedError

    def hex_prefix(self, column: str) -> str:
        """SQL for the integer the first eight hex digits of ``column`` spell (what
        ``int(value[:8], 16)`` gives in Python)."""
        raise NotImplementedError

    def _insert_parquet(
        self, target: str, parts: list[str], cols: list[str], constants: dict[str, str]
    ) -> None:
        raise NotImplementedError

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.con.close()

    # -- shared ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Warehouse]:
        """Everything in the block commits together, or nothing does."""
        self._begin()
        try:
            yield self
        except BaseException:
            self._rollback()
            raise
        self._commit()

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
        with self.transaction():
            self.execute(f"delete from {schema}.{name} where {key_column} = %s", (key_value,))
            if len(frame):
                self._insert_frame(f"{schema}.{name}", frame)
        return len(frame)

    def insert_frames(self, frames: dict[str, Any]) -> None:
        """Append each DataFrame to its table, all in one transaction."""
        with self.transaction():
            for table, frame in frames.items():
                if len(frame):
                    self._insert_frame(table, frame)

    def create_schema(self, schema: str) -> None:
        self.execute(f"create schema if not exists {schema}")

    def ensure_table(
        self, table: str, cols: list[str], column_types: dict[str, str] | None = None
    ) -> tuple[str, str]:
        """Create ``table`` (text columns unless typed) or add the columns it lacks."""
        column_types = column_types or {}
        schema, _, name = table.rpartition(".")
        schema = schema or self.schema
        self.create_schema(schema)
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
        """Replace the rows where ``key = constants[key]`` with the Parquet parts, streaming."""
        schema, name = self.ensure_table(table, [*cols, *constants])
        target = f"{schema}.{name}"
        with self.transaction():
            self.execute(f"delete from {target} where {key} = %s", (constants[key],))
            if parts:
                self._insert_parquet(target, parts, cols, constants)
            n = self.query(f"select count(*) from {target} where {key} = %s", (constants[key],))
        return int(n[0][0])


class DuckDBWarehouse(Warehouse):
    """The embedded default: one DuckDB file under PROFILECAST_HOME (one writing process)."""

    kind = "duckdb"
    schema = "main"

    def __init__(self, settings: Settings, read_only: bool = False) -> None:
        import duckdb

        super().__init__(settings, read_only)
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

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%s", "?")

    def hex_prefix(self, column: str) -> str:
        return f"cast('0x' || substr({column}, 1, 8) as ubigint)"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(self._sql(sql), list(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(self._sql(sql), list(params)).fetchall()

    def df(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.con.execute(self._sql(sql), list(params)).df()

    def _insert_frame(self, table: str, frame: Any) -> None:
        collist = ", ".join(f'"{c}"' for c in frame.columns)
        self.con.register("_pc_frame", frame)
        try:
            self.con.execute(f"insert into {table} ({collist}) select {collist} from _pc_frame")
        finally:
            self.con.unregister("_pc_frame")

    def _insert_parquet(
        self, target: str, parts: list[str], cols: list[str], constants: dict[str, str]
    ) -> None:
        # DuckDB reads the files itself.
        collist = ", ".join(f'"{c}"' for c in [*cols, *constants])
        files = ", ".join("'" + p.replace("'", "''") + "'" for p in parts)
        select = ", ".join([f'"{c}"' for c in cols] + ["?" for _ in constants])
        self.con.execute(
            f"insert into {target} ({collist}) select {select} "
            f"from read_parquet([{files}], union_by_name = true)",
            list(constants.values()),
        )

    def _begin(self) -> None:
        self.con.execute("begin transaction")

    def _commit(self) -> None:
        self.con.execute("commit")

    def _rollback(self) -> None:
        self.con.execute("rollback")


class PostgresWarehouse(Warehouse):
    """PostgreSQL (PROFILECAST_PG_*), autocommit outside ``transaction()``."""

    kind = "postgres"

    def __init__(self, settings: Settings, read_only: bool = False) -> None:
        import psycopg2

        super().__init__(settings, read_only)
        params = postgres_params()
        self.schema = str(params.pop("schema"))
        self.con = psycopg2.connect(**params)
        self.con.autocommit = True
        self.create_schema(self.schema)
        self.execute(f"set search_path to {self.schema}, public")
        self.execute("set timezone = 'UTC'")

    def create_schema(self, schema: str) -> None:
        """``create schema if not exists`` is not safe against itself on PostgreSQL: two
        tasks starting together (the extract tasks of a run) can both pass the check, and
        the second fails on the catalog's unique index. That loser finds the schema made."""
        import psycopg2.errors

        try:
            self.execute(f"create schema if not exists {schema}")
        except (psycopg2.errors.UniqueViolation, psycopg2.errors.DuplicateSchema):
            if not self.query("select 1 from pg_namespace where nspname = %s", (schema,)):
                raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.con.cursor() as cur:
            cur.execute(sql, tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.con.cursor() as cur:
            cur.execute(sql, tuple(params))
            return cur.fetchall() if cur.description else []

    def hex_prefix(self, column: str) -> str:
        return f"cast(cast('x' || substr({column}, 1, 8) as bit(32)) as bigint)"

    def df(self, sql: str, params: Sequence[Any] = ()) -> Any:
        import pandas as pd

        with self.con.cursor() as cur:
            cur.execute(sql, tuple(params))
            cols = [d[0] for d in cur.description]
            return pd.DataFrame(cur.fetchall(), columns=cols)

    def _insert_frame(self, table: str, frame: Any) -> None:
        collist = ", ".join(f'"{c}"' for c in frame.columns)
        buf = io.StringIO()
        frame.to_csv(buf, index=False, header=False, na_rep="\\N")
        buf.seek(0)
        with self.con.cursor() as cur:
            cur.copy_expert(
                f"copy {table} ({collist}) from stdin with (format csv, null '\\N')",
                buf,
            )

    def _insert_parquet(
        self, target: str, parts: list[str], cols: list[str], constants: dict[str, str]
    ) -> None:
        # One COPY per part: memory stays bounded by the largest part.
        import pyarrow.parquet as pq

        for part in parts:
            frame = pq.read_table(part, columns=cols).to_pandas()
            for c, v in constants.items():
                frame[c] = v
            self._insert_frame(target, frame)

    def _begin(self) -> None:
        self.con.autocommit = False

    def _commit(self) -> None:
        self.con.commit()
        self.con.autocommit = True

    def _rollback(self) -> None:
        self.con.rollback()
        self.con.autocommit = True


def open_warehouse(settings: Settings, read_only: bool = False) -> Warehouse:
    """The connection class for the configured dbt target."""
    if settings.dbt_target.startswith("postgres"):
        return PostgresWarehouse(settings, read_only)
    return DuckDBWarehouse(settings, read_only)


@contextmanager
def connect(settings: Settings | None = None, read_only: bool = False) -> Iterator[Warehouse]:
    """Open the configured warehouse for the duration of a ``with`` block."""
    wh = open_warehouse(settings or load_settings(), read_only=read_only)
    try:
        yield wh
    finally:
        wh.close()
