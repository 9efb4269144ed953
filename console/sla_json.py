"""Values inside a ticket's stored SLA state (`tickets.sla`), read by the database, each ticket's
document parsed once per query.

PostgreSQL keeps the state as jsonb (migration 0010): a path is read with `->` at no parse cost.
SQLite's json_extract parses the whole document at every call (a dozen calls per ticket in a report
took 8.6 s at a million records), so one call takes every value a query reads into a short array,
in the order of its paths, and the query reads the array's items."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Engine, func, type_coerce

from connector.store.tables import tickets

Path = tuple[str, ...]


class SlaValues:
    """The `paths` a query reads of `tickets.sla`: `column()` to select once per ticket (in a
    MATERIALIZED CTE), `read(node, *path)` on the CTE's column for one value."""

    def __init__(self, engine: Engine, paths: list[Path] | tuple[Path, ...]):
        self.paths = tuple(paths)
        self.sqlite = engine.dialect.name == "sqlite"

    def column(self) -> Any:
        if not self.sqlite:
            return tickets.c.sla
        extract = ("$." + ".".join(f'"{step}"' for step in path) for path in self.paths)
        return type_coerce(func.json_extract(tickets.c.sla, *extract), JSON)

    def read(self, node: Any, *path: str) -> Any:
        if self.sqlite:
            return node[self.paths.index(path)]
        for step in path:
            node = node[step]
        return node
