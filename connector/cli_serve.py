"""`escalator serve` and `escalator work`: the long-running processes (web + worker)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from connector.cli_common import command, config_arg, load
from connector.errors import StartupError
from connector.logs import setup_logging
from connector.store.db import redact
from connector.version import VERSION
from connector.worker_process import WorkerProcess, worker_command


def add_commands(sub) -> None:
    serve = command(
        sub, "serve", "receive webhooks and apply the policy",
        "Receive webhooks under waitress and start one worker process with the SLA clock. "
        "SIGHUP reloads the policy file (a broken file is refused, the running policy keeps serving); "
        "SIGTERM stops cleanly.",
    )  # fmt: skip
    config_arg(serve)
    serve.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: server.port, 8080)")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="only accept webhooks; run `escalator work` elsewhere to process them",
    )
    serve.set_defaults(run=_serve)

    work = command(
        sub, "work", "process accepted webhooks (serve starts one of these itself)",
        "A worker process with the SLA clock, on its own: for replicas started with `serve --no-worker`.",
    )  # fmt: skip
    config_arg(work)
    work.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # set by serve: stop when it is gone
    # Set by serve: the tag of this process's lease owner name, so serve can hand back what it held.
    work.add_argument("--owner-tag", help=argparse.SUPPRESS)
    work.set_defaults(run=_work)


# A long-running command whose database does not answer at its start (down, restarting, not up yet
# at boot) waits for it, saying so, instead of exiting: a service manager told not to restart on a
# start-up error (exit 2, deploy/*.service) would otherwise leave it stopped. A database that
# refuses (no such database, a wrong password) still ends it at once: waiting cannot fix that.
WAIT_FIRST, WAIT_LONGEST = 1.0, 15.0


def _runtime(args, process: str):
    """Config, logging, database and policy for a long-running command."""
    import os
    import time

    from connector.runtime import build_runtime
    from connector.store import policy_texts
    from connector.store.db import DatabaseUnavailable

    config = load(args)
    setup_logging(config.log_format, process)
    pause = WAIT_FIRST
    while True:
        try:
            rt = build_runtime(config)
            break
        except DatabaseUnavailable as exc:
            parent = getattr(args, "parent_pid", None)
            if not exc.may_answer_later or (parent is not None and os.getppid() != parent):
                raise
            logging.getLogger("escalator").warning("%s; waiting for it (next try in %.0f s)", exc, pause)
            time.sleep(pause)
            pause = min(pause * 2, WAIT_LONGEST)
    policy_texts.keep(rt.engine, rt.policy.current, rt.clock())  # the console's diff shows what ran
    return rt


def _serve(args) -> int:
    from connector.app import create_app

    rt = _runtime(args, "web")
    config = rt.config
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port  # --port 0: any free port
    server = listen(create_app(rt), host, port, threads=config.server.threads)
    # Workers run in their own process: in this one they would compete with the webhook
    # threads for the GIL and the acknowledgement latency would follow the worker's load.
    worker = None
    if not args.no_worker and config.worker.threads:
        worker = WorkerProcess(
            worker_command(args.config), on_end=lambda owner: _hand_back(rt, owner),
            liveness_lock=config.worker.liveness,
        )  # fmt: skip
    _banner(rt, f"http://{host}:{server.effective_port}", worker)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a service manager's stop: shut down cleanly
    signal.signal(signal.SIGHUP, lambda *_: _reload_policy(rt, worker))
    _freeze_heap()
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if worker is not None:
            worker.stop(config.worker.shutdown_seconds + 10)
    return 0


def _hand_back(rt, owner: str) -> None:
    """What the worker process `owner` held when it ended, free for any worker now (its leases would
    have run out after worker.lease_seconds)."""
    from connector.store import leases

    ended = leases.run_out(rt.engine, owner, rt.clock())
    if ended:
        logging.getLogger("escalator").warning("handed back what the worker %s held: %s", owner, ended)


def listen(app, host: str, port: int, *, threads: int):
    """waitress bound to host:port, or a StartupError saying what to do (port in use, no such address)."""
    import errno
    import socket

    from waitress import create_server

    try:
        return create_server(app, host=host, port=port, threads=threads, ident="escalator")
    except socket.gaierror as exc:
        raise StartupError(
            f"cannot listen on {host}: not an address of this machine ({exc.strerror}); "
            "fix server.host or --host"
        ) from exc
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use (another Escalator?): stop that process, "
                "or choose another port with --port or server.port"
            ) from exc
        if exc.errno == errno.EACCES:
            raise StartupError(
                f"port {port} needs privileges this user does not have: use a port above 1023 "
                "behind a reverse proxy (deploy/nginx.conf)"
            ) from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise StartupError(
                f"cannot listen on {host}: not an address of this machine; fix server.host or --host"
            ) from exc
        raise


def _banner(rt, url: str, worker) -> None:
    """What runs, where: a few text lines, or one JSON line with `log_format: json`."""
    config = rt.config
    mode = "DRY-RUN (decisions are audited, nothing is written to platforms)" if rt.dry_run else "LIVE"
    platforms = (
        ", ".join(f"POST /webhooks/{k}" for k in rt.installations) or "none configured (add platforms.jira)"
    )
    if config.log_format == "json":
        logging.getLogger("escalator").info(
            "Escalator listening",
            extra={
                "fields": {
                    "url": url,
                    "version": VERSION,
                    "policy": rt.policy.current.summary(),
                    "database": redact(config.database),
                    "mode": "dry_run" if rt.dry_run else "live",
                    "webhooks": sorted(rt.installations),
                    "worker_pid": worker.pid if worker else None,
                    "worker_threads": config.worker.threads if worker else 0,
                    "worker_concurrency": config.worker.concurrency if worker else 0,
                }
            },
        )
        return
    print(
        f"Escalator listening on {url}\n"
        f"  version:   {VERSION}\n"
        f"  policy:    {rt.policy.current.summary()}\n"
        f"  database:  {redact(config.database)}\n"
        f"  mode:      {mode}\n"
        f"  webhooks:  {platforms}\n"
        f"  workers:   {_describe_worker(config, worker)}\n"
        f"  health:    /healthz /readyz /metrics",
        flush=True,
    )


def _reload_policy(rt, worker=None) -> bool:
    """SIGHUP: load the policy file again; a broken file is refused and the old policy keeps serving.
    One log line in each process (the worker gets the signal and says it itself). True when a
    different policy now serves."""
    from connector.runtime import one_line
    from policies import PolicyError

    log = logging.getLogger("escalator")
    if worker is not None:
        worker.send_signal(signal.SIGHUP)
    before = rt.policy.current
    try:
        after = rt.policy.reload()
    except PolicyError as exc:
        rt.metrics.policy_reload_failures.inc()
        log.error(
            "policy reload refused, still serving %s: %s",
            before.summary(),
            one_line(exc),
            extra={"fields": {"policy_sha256": before.sha256, "problems": len(exc.problems)}},
        )
        return False
    log.info("policy reloaded: %s", after.summary(), extra={"fields": {"policy_sha256": after.sha256}})
    from connector.store import policy_texts

    try:
        policy_texts.keep(rt.engine, after, rt.clock())
    except Exception as exc:  # (in a signal handler: raised here, it would end the process)
        log.warning(
            "policy reloaded, but its text could not be kept for the console's diff (%s: %s); "
            "it is kept at the next reload or start", type(exc).__name__, one_line(exc),
        )  # fmt: skip
    return after.sha256 != before.sha256


def _describe_worker(config, worker) -> str:
    if worker is None:
        return "none here"
    w = config.worker
    return f"{w.concurrency} deliveries at once ({w.threads} computing) in process {worker.pid}"


def _exit_on_sigterm(_signum, _frame) -> None:
    raise SystemExit(0)


def _work(args) -> int:
    import os

    from connector.lease_keeper import DeadOwners, LeaseKeeper
    from connector.outbox import OutboxSender
    from connector.retarget import Retargeter
    from connector.runtime import owner_name
    from connector.scheduler import SlaScheduler
    from connector.store import liveness
    from connector.worker import WorkerPool

    rt = _runtime(args, "worker")
    # Named by serve (it hands back what a worker it started held when it ends), or by itself; with
    # worker.liveness off, by a tag without liveness's mark, so no other worker looks for its lock.
    tag = args.owner_tag or liveness.new_tag(lock=rt.config.worker.liveness)
    rt.owner = owner_name(os.getpid(), tag)
    # The parent may already be gone by the time this process has imported everything.
    parent = args.parent_pid
    if parent is not None and os.getppid() != parent:
        logging.getLogger("escalator").warning("parent process %s is gone; not starting", parent)
        return 0
    if rt.config.worker.nice:
        # Only matters when the cores are busy; then webhook acknowledgements (which platforms
        # time out and retry) go before decisions, which the durable inbox lets wait.
        os.nice(rt.config.worker.nice)
    pool = WorkerPool(rt, parent_pid=parent)
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
        try:
            start_http_server(port, addr=host, registry=rt.metrics.worker_registry)
        except OSError as exc:
            raise StartupError(
                f"the worker's metrics port {port} on {host} cannot be opened ({exc.strerror}): "
                "another process uses it? Choose another worker.metrics_port"
            ) from exc
    # Held before anything is claimed: every other worker can tell from now on whether this one lives.
    alive = liveness.Alive(rt.engine, rt.owner) if liveness.holds_lock(rt.owner) else None
    if alive is not None:
        alive.hold()
    _freeze_heap()
    pool.start()
    # The SLA clock runs beside the workers: what it fires, they process (woken at once).
    scheduler = SlaScheduler(rt, on_fired=pool.wake)
    scheduler.start()
    sender = OutboxSender(rt)  # notifications: their own loop, so a dead channel never holds up a ticket
    sender.start()
    keeper = LeaseKeeper(rt, pool.held, sender.held)  # short leases, renewed while their work goes on
    keeper.start()
    dead = DeadOwners(rt, alive, on_handed_back=pool.wake)  # other workers' work, when they are gone
    if alive is not None:
        dead.start()
    finished = False
    try:
        finished = pool.wait()  # returns within worker.shutdown_seconds of the stop
    finally:
        # The clock's and the sender's threads get a second each: a reconcile job or a message
        # still on the wire is done again by the next worker, and must not keep this one alive.
        scheduler.stop()
        sender.stop(timeout=1.0)
        keeper.stop()
        dead.stop()
        if finished and alive is not None:  # else deliveries still run: the lock goes with the process
            alive.release()
    _exit_now_if_stuck()
    return 0


def _exit_now_if_stuck() -> None:
    """Python joins every non-daemon thread (a thread pool's, APScheduler's) before it exits: one
    stuck in a request would keep an orphaned worker alive. Past the bounded stop, exit at once."""
    import os
    import threading

    stuck = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon
             and t is not threading.main_thread()]  # fmt: skip
    if stuck:
        log = logging.getLogger("escalator")
        log.warning("exiting with threads still running: %s", ", ".join(sorted(stuck)))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


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
