"""How much work SQLite does for a read: the steps of its virtual machine, counted by a progress
handler on every connection an engine opens. Work, not time, so a test on it cannot flake; a
statement that walks the inbox's history shows as steps growing with it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Engine, event

from connector.store import inbox as inbox_store
from connector.store.tables import inbox

STEP = 10  # virtual-machine instructions per count


def store_history(engine: Engine, platform: str, finished: int, at: datetime, *, analyze: bool) -> None:
    """The inbox holds `finished` delivered rows of `platform` (on 500 tickets) and nothing else.
    `analyze`: SQLite's statistics are gathered after (`ANALYZE`, what `PRAGMA optimize` may run)."""
    rows = [
        {**inbox_store.new_row(platform, f"h-{n}", "updated", str(n % 500), False, b"{}", at),
         "status": inbox_store.DONE}
        for n in range(finished)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(inbox.delete())
        if rows:
            conn.execute(inbox.insert(), rows)
        if analyze:
            conn.exec_driver_sql("ANALYZE")


@contextmanager
def counting_steps(engine: Engine) -> Iterator[list[int]]:
    """`[steps]` SQLite takes (in tens) on the connections `engine` opens inside the block."""
    engine.dispose()  # the connections used inside are opened counting
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0  # go on

    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.set_progress_handler(count, STEP)

    event.listen(engine, "connect", on_connect)
    try:
        yield steps
    finally:
        event.remove(engine, "connect", on_connect)
        engine.dispose()
