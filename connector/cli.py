"""The `escalator` command (also `python -m connector`)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from connector.config import Config, ConfigError, load_config

DEFAULT_CONFIG = "escalator.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    from policies import PolicyError

    try:
        return args.run(args)
    except ConfigError as exc:
        print(f"escalator: config error:\n{exc}", file=sys.stderr)
        return 2
    except PolicyError as exc:
        print(f"escalator: the policy does not load:\n{exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="escalator", description="One escalation policy for Jira, Zendesk and ServiceNow."
    )
    sub = parser.add_subparsers(metavar="COMMAND")

    serve = sub.add_parser("serve", help="receive webhooks and apply the policy")
    _config_arg(serve)
    serve.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: server.port, 8080)")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="only accept webhooks; run `escalator work` elsewhere to process them",
    )
    serve.set_defaults(run=_serve)

    work = sub.add_parser("work", help="process accepted webhooks (serve starts one of these itself)")
    _config_arg(work)
    work.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # set by serve: stop when it is gone
    work.set_defaults(run=_work)

    policy = sub.add_parser("policy", help="work with policy files").add_subparsers(metavar="ACTION")
    check = policy.add_parser("check", help="validate policy files; prints FILE:LINE: problem")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(run=_policy_check)

    doctor = sub.add_parser(
        "doctor", help="check config, policy, database and each platform's credentials before going live"
    )
    _config_arg(doctor)
    doctor.add_argument(
        "--offline", action="store_true", help="do not ask the platforms who the credentials belong to"
    )
    doctor.set_defaults(run=_doctor)

    simulate = sub.add_parser(
        "simulate", help="show what Escalator would do with one webhook payload (nothing is stored or sent)"
    )
    _config_arg(simulate)
    simulate.add_argument("platform", help="jira, zendesk or servicenow")
    simulate.add_argument(
        "payload", help="a webhook body as the platform sends it: a JSON file, or - for stdin"
    )
    simulate.add_argument("--policy", help="the policy file to try (default: the config's)")
    simulate.add_argument(
        "--tier", help="the ticket's tier now (default: a ticket never seen, at its mapped tier)"
    )
    simulate.add_argument("--at", type=_timestamp, help="when it happens, ISO-8601 (default: now)")
    simulate.add_argument("--format", choices=("text", "json"), default="text")
    simulate.set_defaults(run=_simulate)

    audit_cmd = sub.add_parser("audit", help="read the audit log").add_subparsers(metavar="ACTION")
    export = audit_cmd.add_parser("export", help="write audit records as JSON lines or CSV")
    _config_arg(export)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--platform", help="only this platform (jira, zendesk, servicenow)")
    export.add_argument(
        "--since", type=_timestamp, help="only records at or after this ISO-8601 date/time (UTC if no zone)"
    )
    export.add_argument("--ticket", help="only this ticket id")
    export.add_argument("--rule", help="only records where this rule fired")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(run=_audit_export)
    verify = audit_cmd.add_parser(
        "verify", help="prove the hash chain is unbroken; names the first bad record"
    )
    _config_arg(verify)
    verify.set_defaults(run=_audit_verify)
    return parser


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        help=f"config file (default: ./{DEFAULT_CONFIG} if present, else the embedded default)",
    )


def _timestamp(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not an ISO-8601 date/time: {value!r} (e.g. 2026-11-01 or 2026-11-01T09:00:00Z)"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _load(args) -> Config:
    path = args.config
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    return load_config(path)


def _runtime(args):
    """Config, logging, database and policy for a long-running command."""
    from connector.runtime import build_runtime

    config = _load(args)
    _setup_logging(config.log_format)
    return build_runtime(config)


def _serve(args) -> int:
    from waitress import create_server

    from connector.app import create_app

    rt = _runtime(args)
    config = rt.config
    host = args.host or config.server.host
    port = args.port or config.server.port
    server = create_server(
        create_app(rt), host=host, port=port, threads=config.server.threads, ident="escalator"
    )
    # Workers run in their own process: in this one they would compete with the webhook
    # threads for the GIL and the acknowledgement latency would follow the worker's load.
    worker = None if args.no_worker or config.worker.threads == 0 else _spawn_worker(args)
    mode = "DRY-RUN (decisions are audited, nothing is written to platforms)" if rt.dry_run else "LIVE"
    platforms = (
        ", ".join(f"POST /webhooks/{k}" for k in rt.installations) or "none configured (add platforms.jira)"
    )
    print(
        f"Escalator listening on http://{host}:{server.effective_port}\n"
        f"  policy:    {rt.policy.current.summary()}\n"
        f"  database:  {_redact(config.database)}\n"
        f"  mode:      {mode}\n"
        f"  webhooks:  {platforms}\n"
        f"  workers:   {_describe_worker(config, worker)}\n"
        f"  health:    /healthz /readyz /metrics",
        flush=True,
    )
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a service manager's stop: shut down cleanly
    signal.signal(signal.SIGHUP, lambda *_: _reload_policy(rt, worker))
    _freeze_heap()
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(15)
    return 0


def _doctor(args) -> int:
    from connector.doctor import diagnose, report

    text, status = report(diagnose(_load(args), online=not args.offline))
    print(text)
    return status


def _simulate(args) -> int:
    from connector.simulate import SimulationError, as_json, as_text, simulate
    from policies import load_policy

    config = _load(args)
    policy = load_policy(args.policy or config.policy)
    try:
        body = sys.stdin.buffer.read() if args.payload == "-" else Path(args.payload).read_bytes()
    except OSError as exc:
        print(f"escalator: cannot read the payload: {exc}", file=sys.stderr)
        return 2
    try:
        sim = simulate(config, policy, args.platform, body, args.at or datetime.now(UTC), tier=args.tier)
    except SimulationError as exc:
        print(f"escalator: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(as_json(sim), indent=2, ensure_ascii=False) if args.format == "json" else as_text(sim))
    return 0


def _reload_policy(rt, worker=None) -> bool:
    """SIGHUP: load the policy file again; a broken file is refused and the old policy keeps serving.
    True when a different policy now serves."""
    from policies import PolicyError

    log = logging.getLogger("escalator")
    if worker is not None:
        worker.send_signal(signal.SIGHUP)
    before = rt.policy.current
    try:
        after = rt.policy.reload()
    except PolicyError as exc:
        log.error("policy reload refused, still serving %s:\n%s", before.summary(), exc)
        return False
    log.info("policy reloaded: %s", after.summary())
    return after.sha256 != before.sha256


def _describe_worker(config, worker) -> str:
    return f"{config.worker.threads} threads in process {worker.pid}" if worker else "none here"


def _exit_on_sigterm(_signum, _frame) -> None:
    raise SystemExit(0)


def _spawn_worker(args):
    import os
    import subprocess

    command = [sys.executable, "-m", "connector", "work", "--parent-pid", str(os.getpid())]
    if args.config:
        command += ["--config", args.config]
    return subprocess.Popen(command)


def _work(args) -> int:
    import os

    from connector.retarget import Retargeter
    from connector.scheduler import SlaScheduler
    from connector.worker import WorkerPool

    rt = _runtime(args)
    # The parent may already be gone by the time this process has imported everything.
    parent = args.parent_pid
    if parent is not None and os.getppid() != parent:
        logging.getLogger("escalator").warning("parent process %s is gone; not starting", parent)
        return 0
    if rt.config.worker.nice:
        # Only matters when the cores are busy; then webhook acknowledgements (which platforms
        # time out and retry) go before decisions, which the durable inbox lets wait.
        os.nice(rt.config.worker.nice)
    pool = WorkerPool(rt, threads=max(1, rt.config.worker.threads), parent_pid=parent)
    signal.signal(signal.SIGTERM, lambda *_: pool.request_stop())
    # A new policy may move SLA targets: the timers already armed are re-armed in the background.
    retargeter = Retargeter(rt)
    signal.signal(signal.SIGHUP, lambda *_: _reload_policy(rt) and retargeter.request())
    logging.getLogger("escalator").info(
        "worker started: %s, nice %+d, policy %s", rt.owner, os.nice(0), rt.policy.current.summary()
    )
    if rt.config.worker.metrics_port:
        # Decisions, platform requests and timers are counted here, not in the web process.
        from prometheus_client import start_http_server

        port, host = rt.config.worker.metrics_port, rt.config.server.host
        start_http_server(port, addr=host, registry=rt.metrics.registry)
    _freeze_heap()
    pool.start()
    # The SLA clock runs beside the workers: what it fires, they process (woken at once).
    scheduler = SlaScheduler(rt, on_fired=pool.wake)
    scheduler.start()
    try:
        pool.wait()
    finally:
        scheduler.stop()
    return 0


def _freeze_heap() -> None:
    """Move everything loaded at start-up (libraries, policy, calendars) out of the collector's sight.

    A full collection walks every tracked object: ~137,000 after start-up, 100 ms a pass. In
    the web process that stalled every request in flight; in the worker it happened inside
    write transactions, and webhook acknowledgements queued behind the writer lock (p99 at
    200 req/s: 64 ms web-only and 114 ms with the worker before, 8 and 25 ms after).
    Objects made later are collected as usual.
    """
    import gc

    gc.collect()
    gc.freeze()


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


def _policy_check(args) -> int:
    from policies import check_policy, load_policy

    failed = False
    for file in args.files:
        problems = check_policy(file)  # errors and warnings, by line
        for problem in problems:
            print(problem)
        if any(p.is_error for p in problems):
            failed = True
            continue
        warned = sum(1 for p in problems if not p.is_error)
        note = f" ({warned} warning{'s' if warned != 1 else ''})" if warned else ""
        print(f"{file}: OK{note} — {load_policy(file).summary()}")
    return 1 if failed else 0


def _audit_engine(args):
    from connector.store.db import make_engine, migrate

    engine = make_engine(_load(args).database)
    migrate(engine)
    return engine


def _audit_export(args) -> int:
    from connector import audit

    engine = _audit_engine(args)
    records = audit.records(
        engine, platform=args.platform, since=args.since, ticket=args.ticket, rule=args.rule
    )
    write = audit.write_csv if args.format == "csv" else audit.write_jsonl
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            count = write(records, out)
        print(f"wrote {count} audit records to {args.output}", file=sys.stderr)
    else:
        write(records, sys.stdout)
    return 0


def _audit_verify(args) -> int:
    from connector import audit

    result = audit.verify(_audit_engine(args))
    print(result)
    return 0 if result.ok else 1


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _setup_logging(fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        _JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # APScheduler logs two INFO lines per tick (~170,000 a day); our own tick logs what it fired.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Alembic (1.20 here) announces each of its seven autogenerate plugins at INFO on every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
