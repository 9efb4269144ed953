"""The read-only web console (/console) and its JSON API (/api/v1): decisions, tickets, SLA risk,
reports, integrity and operations, over the store the connector writes.

`register(app, rt)` mounts both on the connector's Flask app; everything else stays inside this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from connector.runtime import Runtime


def register(app: Flask, rt: Runtime) -> None:
    """Mount the console and the API on `app` (the connector's app factory calls this)."""
    from console import auth
    from console.web import mount

    auth.prepare()
    mount(app, rt)
