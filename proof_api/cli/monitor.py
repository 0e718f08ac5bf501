"""`evledger monitor`: follow a ledger from the outside (its API and the chain, no data
directory) and raise an ALERT line on a fork, an inconsistency, a wrong or late anchor."""
from __future__ import annotations

import argparse
import re
import signal
import sys
import threading

import click

from .binding import Command, Seconds, option

# Exit status of a one-shot run that could not finish checking (the API or the chain could not
# be read) and raised no alarm: neither "all checked" (0) nor "alarm" (1).
EXIT_UNCHECKED = 4


@click.command("monitor", cls=Command,
               help="check a ledger from the outside: every checkpoint signed by a pinned key and consistent with "
                    "the last, no size shown with two roots, and (with --rpc/--contract) every anchor equal to its "
                    "checkpoint and in time; prints ALERT lines, exit 0 all checked, 1 alarm, 4 could not check")
@click.argument("ledger")
@option("--url", envvar="EVLEDGER_MONITOR_URL", metavar="URL",
        help="the ledger service's base URL (http://host:port)")
@option("--tiles", envvar="EVLEDGER_MONITOR_TILES", metavar="URL|DIR",
        help="instead of --url: the ledger's published static tiles (a URL prefix …/tiles/LEDGER, or a copy of "
             "the directory); each published checkpoint is checked, with its consistency proof computed from them")
@option("--api-key", envvar="EVLEDGER_API_KEY", metavar="KEY", help="an auditor API key of the ledger")
@option("--api-key-file", envvar="EVLEDGER_API_KEY_FILE", metavar="FILE", help="a file holding that key")
@option("--key", multiple=True, metavar="VKEY",
        help="the ledger's verifier key, pinned (name+keyid+base64); repeat for rotated keys")
@option("--key-file", multiple=True, envvar="EVLEDGER_MONITOR_KEY_FILE", metavar="FILE",
        help="a file of pinned verifier keys, one per line (# comments)")
@option("--origin", metavar="ORIGIN", help="the ledger's checkpoint origin (default evledger/LEDGER)")
@option("--state", envvar="EVLEDGER_MONITOR_STATE", metavar="FILE",
        help="SQLite file of what was verified and the alarms raised (default ./evledger-monitor-LEDGER.sqlite)")
@option("--rpc", envvar="EVLEDGER_CHAIN_RPC", metavar="URL", help="EVM JSON-RPC endpoint: check the anchors")
@option("--contract", envvar="EVLEDGER_CONTRACT", metavar="ADDRESS", help="the AnchorRegistry address")
@option("--confirmations", type=click.IntRange(min=1), default=1, envvar="EVLEDGER_CONFIRMATIONS", metavar="N",
        help="read anchors only from blocks this deep, counting the head")
@option("--from-block", type=click.IntRange(min=0), default=0, envvar="EVLEDGER_MONITOR_FROM_BLOCK", metavar="N",
        help="the first block to read anchors from (the contract's deployment block saves reading older ones)")
@option("--max-anchor-delay", type=Seconds(), envvar="EVLEDGER_MONITOR_MAX_ANCHOR_DELAY", metavar="S",
        help="every checkpoint must be covered by an anchor of its size or more mined within S seconds of its "
             "sealing (needs --rpc and --contract)")
@option("--follow", is_flag=True, help="keep checking every --interval seconds, until stopped")
@option("--interval", type=Seconds(), default=10.0, envvar="EVLEDGER_MONITOR_INTERVAL", metavar="S",
        help="seconds between passes with --follow (network errors: retried at doubling waits, up to 60 s)")
@option("--metrics-port", type=click.IntRange(min=1, max=65535), envvar="EVLEDGER_MONITOR_METRICS_PORT",
        metavar="PORT", help="with --follow: serve Prometheus metrics on this port")
@option("--metrics-host", default="127.0.0.1", envvar="EVLEDGER_MONITOR_METRICS_HOST", metavar="HOST",
        help="address the metrics listen on")
@option("--page-size", type=click.IntRange(min=1, max=1000), default=1000, metavar="N",
        help="checkpoints per request")
@option("--clear-alarms", is_flag=True, help="forget the alarms the state holds (once a fork was dealt with), then check")
def monitor(args: argparse.Namespace) -> int:
    from evledger_verify.verify import load_trusted_keys
    from monitor import ChainAnchors, LedgerApi, LedgerTiles, Monitor, MonitorSettings, MonitorState, SourceError
    from monitor.state import StateMismatch

    _check_usage(args)
    try:
        keys = load_trusted_keys(list(args.key), list(args.key_file))
    except (OSError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if not keys:
        raise click.UsageError("pin the ledger's verifier key with --key VKEY or --key-file FILE: a monitor that "
                               "trusts the server's keys would verify a forged history")
    api_key = args.api_key
    if args.api_key_file:
        try:
            with open(args.api_key_file, encoding="utf-8") as f:
                api_key = f.read().strip()
        except OSError as exc:
            raise click.UsageError(f"--api-key-file {args.api_key_file}: {exc.strerror}") from None

    settings = MonitorSettings(ledger=args.ledger, origin=args.origin or f"evledger/{args.ledger}", trusted_keys=keys,
                               page_size=args.page_size, max_anchor_delay=args.max_anchor_delay,
                               confirmations=args.confirmations, from_block=args.from_block)
    state_path = args.state or f"evledger-monitor-{args.ledger}.sqlite"
    try:
        state = MonitorState(state_path)
    except Exception as exc:  # sqlite3.Error: not a database, cannot be opened
        raise OSError(f"cannot open the state file {state_path}: {exc}") from None
    try:
        api = LedgerApi(args.url, args.ledger, api_key) if args.url else LedgerTiles(args.tiles, args.ledger, keys)
    except SourceError as exc:
        state.close()
        raise click.UsageError(f"--tiles: {exc}") from None
    chain = ChainAnchors(args.rpc, args.contract, settings.origin) if args.rpc else None
    metrics = None
    if args.follow and args.metrics_port is not None:
        from prometheus_client import start_http_server

        from monitor.metrics import MonitorMetrics
        metrics = MonitorMetrics()
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.registry)
    try:
        if args.clear_alarms:
            print(f"evledger monitor: cleared {state.clear_alarms()} alarm(s) from {state_path}", file=sys.stderr)
        for _kind, line in state.alarms():  # sticky: a restart shows them again
            print(line, flush=True)
        try:
            watcher = Monitor(settings, api, state, chain, metrics, report=lambda line: print(line, flush=True))
        except StateMismatch as exc:
            raise click.UsageError(str(exc)) from None
        if args.follow:
            return _follow(watcher, args.interval)
        try:
            result = watcher.check_once()
        except SourceError as exc:
            print(f"evledger monitor: error: {exc}", file=sys.stderr)
            return 1 if state.alarms() else EXIT_UNCHECKED
        last = state.last_verified()
        alarms = state.alarms()
        where = f"up to size {last[0]} (root {last[1]})" if last else "none yet"
        anchors = f"; {state.anchors_checked()} anchor(s) checked up to block {state.meta('last_block')}" if chain else ""
        print(f"ledger {args.ledger}: {result.verified} checkpoint(s) verified in this run, {state.verified_count()} "
              f"in all, {where}{anchors}; {len(alarms)} alarm(s)")
        return 1 if alarms else 0
    finally:
        api.close()
        state.close()


def _check_usage(args: argparse.Namespace) -> None:
    """click.UsageError for options that do not go together."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", args.ledger):
        raise click.UsageError(f"LEDGER {args.ledger!r} is not a ledger id ([a-z0-9][a-z0-9-]{{0,62}})")
    if bool(args.url) == bool(args.tiles):
        raise click.UsageError("give the ledger's API with --url, or its published tiles with --tiles (one of them)")
    if bool(args.rpc) != bool(args.contract):
        raise click.UsageError("--rpc and --contract go together: give both to check anchors, or neither")
    if args.contract and not re.fullmatch(r"0x[0-9a-fA-F]{40}", args.contract):
        raise click.UsageError(f"--contract {args.contract!r} is not an address (0x and 40 hex digits)")
    if args.max_anchor_delay is not None and args.tiles:
        raise click.UsageError("--max-anchor-delay needs each checkpoint's sealing time, which the API gives and "
                               "static tiles do not: use --url")
    if args.max_anchor_delay is not None and not args.rpc:
        raise click.UsageError("--max-anchor-delay needs --rpc and --contract: anchors are read from the chain")
    if args.metrics_port is not None and not args.follow:
        raise click.UsageError("--metrics-port serves metrics while following: give --follow too")
    if args.api_key and args.api_key_file:
        raise click.UsageError("--api-key and --api-key-file both give the key: give one")


def _follow(watcher, interval: float) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def on_error(exc, wait: float) -> None:
        print(f"evledger monitor: error: {exc}; retrying in {wait:g} s", file=sys.stderr, flush=True)

    watcher.follow(interval, stop, on_error)
    return 1 if watcher.state.alarms() else 0
