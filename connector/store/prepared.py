"""Core statements compiled once per backend and run on the DBAPI cursor: the worker's hot paths.

Every `Connection.execute` of a Core statement builds an execution context, looks the statement up
in the compiled cache, runs each parameter through the cached processors and wraps the cursor in a
result with its own row processors: 10-40 µs of Python a statement on this kind of machine, for
statements whose SQLite or PostgreSQL work is a few µs. A decision runs half a dozen of them. A
`Prepared` statement is compiled by SQLAlchemy itself (same SQL, same bind and result processors, so
values are stored and read exactly as through Core), once per backend and set of parameter names,
and then costs a list comprehension and the cursor call.

Statements whose compilation depends on the values (expanding `IN` lists, literal-rendered
parameters) or that need Python-side column defaults filled in are refused when first compiled:
Core handles those. Errors from the driver reach the caller as SQLAlchemy's own exception types.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from connector.store.pgpipeline import PIPELINE, PipelineCursor


class NotPreparable(ValueError):
    """The statement needs something only Core's execute does; run it with conn.execute."""


@dataclass
class _Compiled:
    sql: str
    # Per bound value, in the statement's order: (parameter key, None, its bind processor), or for a
    # constant of the statement's (None, the value as the DBAPI takes it, None).
    binds: tuple[tuple[str | None, Any, Callable[[Any], Any] | None], ...]
    names: tuple[str, ...] | None  # pyformat (psycopg): the placeholders' names; positional: None
    row_keys: tuple[str, ...]  # the result's columns (RETURNING or SELECT), empty for plain DML
    row_types: tuple[Any, ...]
    # Built from the first result's cursor.description (PostgreSQL's processors depend on its types),
    # and set in one assignment: a thread that finds it set finds it whole.
    reader: _Reader | None = None

    def bound(self, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        # Compiled for exactly these parameter names, so every key below is among them. Every value
        # goes through its processor, None too, as Core does (a JSON column's None is JSON null).
        values = [
            (p(params[key]) if p else params[key]) if key is not None else constant
            for key, constant, p in self.binds
        ]
        return values if self.names is None else dict(zip(self.names, values, strict=True))


class Prepared:
    """One Core statement (INSERT, UPDATE, DELETE, SELECT; with RETURNING or not) for the hot paths.

    As with `conn.execute`, the parameter names given choose the columns an INSERT or UPDATE without
    explicit `.values()` sets; each set of names is compiled once per backend. Unlike Core, a name
    that is neither `b_*` (selecting rows) nor a column the statement sets is an error, not skipped."""

    def __init__(self, statement: Any):
        self.statement = statement
        self._compiled: dict[tuple[Any, ...], _Compiled] = {}

    def run(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Execute; the rows the statement matched (the driver's rowcount: its answer is waited for)."""
        compiled = self._for(conn.dialect, params)
        cursor = _cursor(conn)
        try:
            _execute(conn, cursor, compiled, compiled.bound(params))
            return cursor.rowcount
        finally:
            cursor.close()

    def send(self, conn: Connection, params: Mapping[str, Any]) -> None:
        """Execute, its answer not read: in a db.pipelined_writing block on PostgreSQL it is not waited
        for (a refusal still surfaces at the block's next read or end)."""
        compiled = self._for(conn.dialect, params)
        cursor = _cursor(conn)
        try:
            _execute(conn, cursor, compiled, compiled.bound(params))
        finally:
            cursor.close()

    def run_many(self, conn: Connection, many: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per parameter set (the driver's executemany); every set names the same keys."""
        if not many:
            return
        compiled = self._for(conn.dialect, many[0])
        if any(params.keys() != many[0].keys() for params in many):
            raise ValueError(f"every parameter set must name the same keys as the first: {compiled.sql}")
        cursor = _cursor(conn)
        try:
            _execute(conn, cursor, compiled, [compiled.bound(params) for params in many], many=True)
        finally:
            cursor.close()

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Execute; the result's rows, as named tuples with Core's conversions applied."""
        return self.rows_later(conn, params)()

    def rows_later(self, conn: Connection, params: Mapping[str, Any]) -> Callable[[], list[Any]]:
        """Execute now; the rows when the function returned is called (once). In PostgreSQL's pipeline
        mode the statement's answer then comes with the next read's round trip, not one of its own.
        Elsewhere there is no round trip to save: the rows are read at once, so the statement is done
        with before anything else (SQLite will not commit, nor reuse it, while one is left unread)."""
        compiled = self._for(conn.dialect, params)
        cursor = _cursor(conn)
        try:
            _execute(conn, cursor, compiled, compiled.bound(params))
        except BaseException:
            cursor.close()
            raise

        def read() -> list[Any]:
            try:
                raw = cursor.fetchall()
                reader = compiled.reader or _reader(compiled, conn.dialect, cursor.description)
            finally:
                cursor.close()
            return _made(reader, raw)

        if not isinstance(cursor, PipelineCursor):
            rows = read()
            return lambda: rows
        return read

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """Execute; the first row, or None."""
        found = self.rows(conn, params)
        return found[0] if found else None

    def _for(self, dialect: Dialect, params: Mapping[str, Any]) -> _Compiled:
        key = (dialect.name, dialect.driver, dialect.paramstyle, tuple(params))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = _compile(self.statement, dialect, tuple(params))
        return compiled


# Rows one multi-row INSERT holds at most; more go in further statements.
ROWS_A_STATEMENT = 64


class InsertRows:
    """Many rows of one table inserted by the hot paths (a ticket's new SLA timers, a decision's
    messages). On PostgreSQL one statement, `VALUES (…), (…), …`, for up to ROWS_A_STATEMENT rows: the
    driver's executemany sends a statement a row, each parsed, bound and executed on the server and
    dumped on the client. Elsewhere (SQLite runs in-process: a statement costs little) the one-row
    INSERT, executed once per row. `finish` is given the backend's insert() of the table and returns
    the statement to run (an ON CONFLICT clause added, say). The rows are sent, not read back."""

    def __init__(self, table: Table, finish: Callable[[Any], Any] = lambda statement: statement):
        self.table = table
        self._finish = finish
        self._built: dict[tuple[str, tuple[str, ...], int], Prepared] = {}

    def send(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        columns = tuple(rows[0])
        if any(row.keys() != rows[0].keys() for row in rows):
            raise ValueError(f"every row must name the same columns as the first: {columns}")
        if conn.dialect.name != "postgresql":
            self._statement(conn.dialect.name, columns, 1).run_many(conn, rows)
            return
        for start in range(0, len(rows), ROWS_A_STATEMENT):
            chunk = rows[start : start + ROWS_A_STATEMENT]
            values = {f"r{n}_{column}": row[column] for n, row in enumerate(chunk) for column in columns}
            self._statement("postgresql", columns, len(chunk)).send(conn, values)

    def _statement(self, dialect_name: str, columns: tuple[str, ...], count: int) -> Prepared:
        key = (dialect_name, columns, count)
        found = self._built.get(key)
        if found is None:
            insert = (postgresql if dialect_name == "postgresql" else sqlite).insert(self.table)
            if dialect_name == "postgresql":  # each value typed as its column, as Core's own rows
                types = {column: self.table.c[column].type for column in columns}
                insert = insert.values([
                    {column: bindparam(f"r{n}_{column}", type_=types[column]) for column in columns}
                    for n in range(count)
                ])  # fmt: skip
            found = self._built[key] = Prepared(self._finish(insert))
        return found


def _made(reader: _Reader, raw: list[Any]) -> list[Any]:
    """The driver's rows as named tuples, each value through its result processor."""
    make, processors = reader.row_class._make, reader.processors
    if processors is None:
        return [make(row) for row in raw]
    return [
        make([p(v) if p else v for p, v in zip(processors, row)])  # noqa: B905 (lengths checked)
        for row in raw
    ]


def _cursor(conn: Connection) -> Any:
    if not conn.in_transaction():
        conn.begin()  # what a Core statement's autobegin would do: the caller's commit() ends it
    return dbapi_cursor(conn)


def dbapi_cursor(conn: Connection) -> Any:
    """A cursor on `conn`'s DBAPI connection; inside db.pipelined_writing on PostgreSQL, the open
    Pipeline's (its statements sent at once, their answers read when asked for)."""
    fairy = conn.connection
    pipeline = fairy.info.get(PIPELINE)
    return pipeline.cursor() if pipeline is not None else fairy.dbapi_connection.cursor()


def _execute(conn: Connection, cursor: Any, compiled: _Compiled, values: Any, *, many: bool = False) -> None:
    """`values` (bound) sent once, or once per set with `many`; the driver's error raised as the
    SQLAlchemy exception Core would raise (IntegrityError, OperationalError, …)."""
    if conn.dispatch.before_cursor_execute:  # listeners (tests counting statements) see these too
        conn.dispatch.before_cursor_execute(conn, cursor, compiled.sql, values, None, many)
    dbapi = conn.dialect.loaded_dbapi
    try:
        (cursor.executemany if many else cursor.execute)(compiled.sql, values)
    except dbapi.Error as exc:
        raise DBAPIError.instance(compiled.sql, values, exc, dbapi.Error, dialect=conn.dialect) from exc


def _compile(statement: Any, dialect: Dialect, keys: tuple[str, ...]) -> _Compiled:
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise NotPreparable(f"values shape this statement's SQL (an expanding IN?): {compiled.string}")
    if compiled.insert_prefetch or compiled.update_prefetch:
        columns = ", ".join(c.key for c in [*compiled.insert_prefetch, *compiled.update_prefetch])
        raise NotPreparable(f"give {columns} explicitly: their Python-side defaults are Core's to fill in")
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    # Positional (sqlite3's ?): in the placeholders' order; pyformat (psycopg's %(name)s): by name.
    order = names = list(compiled.positiontup) if compiled.positional else list(by_name)
    binds, missing = [], set()
    for name in order:
        bind = by_name[name]
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if bind.callable is not None:
            raise NotPreparable(f"{bind.key} is computed per execution (callable_): run it with Core")
        if bind.key in keys:
            binds.append((bind.key, None, processor))
        elif bind.required:
            missing.add(bind.key)
        else:
            value = bind.effective_value  # a constant of the statement's: processed once, here
            binds.append((None, processor(value) if processor else value, None))
    if missing:  # compiled for these parameter names: every call with them would lack these
        raise KeyError(
            f"prepared statement needs parameter(s) {', '.join(sorted(missing))}: {compiled.string}"
        )
    if misspelt := _not_set(statement, compiled, keys):
        raise ValueError(f"not {statement.table.name} columns: {', '.join(misspelt)}")
    columns = list(getattr(statement, "exported_columns", ()) or ())
    row_keys = tuple(column.key for column in columns)
    if len(set(row_keys)) != len(row_keys):
        raise NotPreparable(f"the result's columns need distinct names (label them): {row_keys}")
    return _Compiled(
        compiled.string,
        tuple(binds),
        None if compiled.positional else tuple(names),
        row_keys,
        tuple(column.type for column in columns),
    )


def _not_set(statement: Any, compiled: Any, keys: tuple[str, ...]) -> list[str]:
    """Of an INSERT's or UPDATE's parameter names, those meant as values (not `b_*`, which select
    rows) that are no column it sets: Core would leave them out of the SET or VALUES clause without
    a word, so a misspelt column would be skipped silently."""
    if not isinstance(getattr(statement, "table", None), Table):
        return []
    bound = {bind.key for bind in compiled.bind_names}
    return sorted(key for key in keys if not key.startswith("b_") and key not in bound)


@dataclass(frozen=True)
class _Reader:
    row_class: Any  # a named tuple of the result's columns
    processors: tuple[Callable[[Any], Any] | None, ...] | None  # None: every value as the driver gave it


def _reader(compiled: _Compiled, dialect: Dialect, description: Any) -> _Reader:
    if description is None or len(description) != len(compiled.row_keys):
        raise NotPreparable(f"expected the columns {compiled.row_keys}, the driver described {description}")
    processors = tuple(
        kind.dialect_impl(dialect).result_processor(dialect, column[1])
        for kind, column in zip(compiled.row_types, description, strict=True)
    )
    row_class = namedtuple("Row", compiled.row_keys)  # type: ignore[misc]  # noqa: PYI024
    compiled.reader = _Reader(row_class, processors if any(processors) else None)
    return compiled.reader
