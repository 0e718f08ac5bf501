"""`evledger witness init|key|serve`: a witness, run by an independent party with its own SM2
key and its own state (docs/witness.md)."""
from __future__ import annotations

import argparse
import sys

import click

from .binding import Group, option


def _directory():
    return option("--dir", "directory", default="./witness", envvar="EVLEDGER_WITNESS_DIR", metavar="DIR",
                  help="the witness's directory: its key, its name and its state")


@click.group("witness", cls=Group, help="run a witness that cosigns ledgers' checkpoints it checked consistent "
                                       "(c2sp.org/tlog-witness, SM2)")
def witness_group() -> None:
    pass


@witness_group.command("init", help="create a witness: a name and a new SM2 cosigning key; prints its verifier key")
@_directory()
@option("--name", required=True, envvar="EVLEDGER_WITNESS_NAME", metavar="NAME",
        help="the witness's name, a schema-less URL such as court.example/witness (no spaces or '+')")
def init(args: argparse.Namespace) -> int:
    from witness.state import WitnessState, WitnessStateError

    try:
        identity = WitnessState(args.directory).create(args.name)
    except (WitnessStateError, ValueError, OSError) as exc:
        print(f"evledger witness init: error: {exc}", file=sys.stderr)
        return 1
    print(identity.verifier_key)
    return 0


@witness_group.command("key", help="print the witness's verifier key (what a ledger and a court are given)")
@_directory()
def key(args: argparse.Namespace) -> int:
    from witness.state import WitnessState, WitnessStateError

    try:
        print(WitnessState(args.directory).identity().verifier_key)
    except WitnessStateError as exc:
        print(f"evledger witness key: error: {exc}", file=sys.stderr)
        return 1
    return 0


@witness_group.command("serve", help="serve add-checkpoint for the logs given, until a signal stops it")
@_directory()
@option("--log", "logs", multiple=True, envvar="EVLEDGER_WITNESS_LOGS", metavar="VKEY",
        help="the verifier key of an SM3 ledger to witness (its name is the ledger's origin); repeat for more")
@option("--sha256-log", "sha256_logs", multiple=True, metavar="VKEY", help="the same, for a SHA-256 ledger")
@option("--host", default="127.0.0.1", envvar="EVLEDGER_WITNESS_HOST", metavar="HOST", help="address to listen on")
@option("--port", type=int, default=8090, envvar="EVLEDGER_WITNESS_PORT", metavar="PORT", help="port")
@option("--prefix", default="", envvar="EVLEDGER_WITNESS_PREFIX", metavar="PATH",
        help="the submission prefix: add-checkpoint is served at PATH/add-checkpoint")
def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from witness.server import Witness, create_app, witnessed_logs
    from witness.state import WitnessState, WitnessStateError

    if not args.logs and not args.sha256_logs:
        raise click.UsageError("name at least one ledger to witness: --log VKEY (or --sha256-log VKEY)")
    try:
        logs = witnessed_logs(list(args.logs), list(args.sha256_logs))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--log") from None
    state = WitnessState(args.directory)
    try:
        state.lock()
        witness = Witness(state, logs)
    except WitnessStateError as exc:
        print(f"evledger witness serve: error: {exc}", file=sys.stderr)
        return 1
    print(f"evledger witness: {witness.identity.name} witnessing {', '.join(sorted(logs))} on "
          f"http://{args.host}:{args.port}{args.prefix.rstrip('/')}/add-checkpoint", file=sys.stderr, flush=True)
    try:
        config = uvicorn.Config(create_app(witness, args.prefix), host=args.host, port=args.port,
                                log_level="warning", access_log=False, ws="none", proxy_headers=False)
        uvicorn.Server(config).run()
    finally:
        state.close()
    return 0
