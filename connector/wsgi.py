"""`connector.wsgi:application`, the web app for gunicorn, uWSGI or any WSGI server:

    ESCALATOR_CONFIG=/etc/escalator/escalator.yaml gunicorn -w 4 -b 127.0.0.1:8080 connector.wsgi:application

The config comes from ESCALATOR_CONFIG (else ./escalator.yaml when present, else the embedded default).
This is the web process only (webhooks, /healthz, /readyz, /metrics): run `escalator work` beside it
for the decisions and the SLA clock (deploy/escalator-worker.service). Each server worker process
opens its own database pool and loads the policy when it starts; the server's own reload (gunicorn:
SIGHUP) starts new workers with the policy file as it then is, so check it first
(`escalator policy check`).
"""

from __future__ import annotations

import os

from flask import Flask

from connector.cli_common import DEFAULT_CONFIG
from connector.errors import StartupError

# gunicorn's exit status for "a worker cannot boot": the server stops instead of retrying forever.
BOOT_ERROR = 3


def make_application(config_path: str | None = None) -> Flask:
    """The app built from `config_path` (default: ESCALATOR_CONFIG, as above), logging as configured."""
    from connector.app import create_app
    from connector.config import load_config
    from connector.logs import setup_logging
    from connector.runtime import build_runtime

    path = config_path or os.environ.get("ESCALATOR_CONFIG")
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    config = load_config(path)
    setup_logging(config.log_format, "web")
    return create_app(build_runtime(config))


def _application() -> Flask:
    """A config, policy or database the app cannot start with is one line on stderr, not a traceback."""
    from connector.config import ConfigError
    from connector.logs import fatal
    from policies import PolicyError

    try:
        return make_application()
    except ConfigError as exc:
        fatal(f"config error (ESCALATOR_CONFIG):\n{exc}")
    except PolicyError as exc:
        fatal(f"the policy does not load:\n{exc}")
    except StartupError as exc:
        fatal(str(exc))
    raise SystemExit(BOOT_ERROR)


application = _application()
