"""`evledger proof`: a record's proof bundle from a remote service (through the client) or
from the ledger's published static tiles alone; and the options that name a service and a
record, which `evledger certificate` shares."""
from __future__ import annotations

import argparse
import sys

import click
import orjson

from .binding import Command, option


def service_options(command):
    """--url, --api-key, --ca-file: a remote service, as the client reads them (EVLEDGER_*)."""
    for decorate in reversed((
            option("--url", envvar="EVLEDGER_URL", metavar="URL", help="the service (https://host:port)"),
            option("--api-key", envvar="EVLEDGER_API_KEY", metavar="KEY", help="an auditor or verifier key of the ledger"),
            option("--ca-file", envvar="EVLEDGER_CA_FILE", metavar="PEM",
                   help="trust the certificates in this file (a self-signed service's)"))):
        command = decorate(command)
    return command


def record_options(command):
    """--seq, --evidence-id, --content-hash, --file: the record, named one way."""
    for decorate in reversed((
            option("--seq", type=click.IntRange(min=0), metavar="N", help="the record's index in the ledger"),
            option("--evidence-id", metavar="ID", help="the record's evidence id"),
            option("--content-hash", metavar="SM3", help="the record's content hash (from a service only)"),
            option("--file", "record_file", metavar="FILE",
                   help="the evidence file: the record of its SM3 (from a service only)"))):
        command = decorate(command)
    return command


def named_record(args: argparse.Namespace) -> dict:
    named = {k: v for k, v in (("seq", args.seq), ("evidence_id", args.evidence_id),
                                ("content_hash", args.content_hash), ("file", args.record_file)) if v is not None}
    if len(named) != 1:
        raise click.UsageError("name the record with one of --seq, --evidence-id, --content-hash and --file")
    return named


def service_client(args: argparse.Namespace, ledger: str):
    from evledger_client import Client

    if not args.url:
        raise click.UsageError("name the service with --url (or EVLEDGER_URL)")
    try:
        return Client(args.url, ledger, args.api_key, ca_file=args.ca_file, retry_for=30.0)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def fetched(what: str, fetch):
    """`fetch()`'s result; a client error (the service's word for it) is a line on stderr and exit 1
    (binding.run_reporting_errors)."""
    from evledger_client import EvledgerError

    try:
        return fetch()
    except EvledgerError as exc:
        raise ValueError(f"the service gave no {what}: {exc}") from None


@click.command("proof", cls=Command,
               help="fetch a record's proof bundle (evledger-proof/2) from a service (--url), or build it from the "
                    "ledger's published static tiles alone (--tiles: against the published checkpoint, with no "
                    "anchor, since tiles carry none)")
@click.argument("ledger")
@service_options
@record_options
@option("--checkpoint", type=click.IntRange(min=1), metavar="SIZE",
        help="from a service: against the checkpoint of this size (default: the first anchored one covering it)")
@option("--unanchored", is_flag=True,
        help="from a service: the first checkpoint covering it even before an anchor does (no anchor in the bundle)")
@option("--tiles", metavar="URL|DIR",
        help="the ledger's publication instead of a service: a URL prefix (…/tiles/LEDGER) or a copy of its directory")
@option("--key", multiple=True, metavar="VKEY", help="with --tiles: the ledger's verifier key (repeat for rotated keys)")
@option("--key-file", multiple=True, metavar="FILE", help="with --tiles: a file of verifier keys, one per line")
@option("--hash-alg", type=click.Choice(("sm3", "sha256")),
        help="with --tiles: the ledger's tree hash (default: found from the tiles, reading entry bundle 0 too)")
@option("--out", metavar="FILE", help="write the bundle here (default: standard output)")
def proof(args: argparse.Namespace) -> int:
    named = named_record(args)
    if args.tiles:
        bundle = _from_tiles(args, named)
    else:
        with service_client(args, args.ledger) as client:
            bundle = fetched("proof bundle", lambda: client.proof(**named, checkpoint=args.checkpoint,
                                                                  require_anchor=not args.unanchored))
    data = orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n"
    if args.out:
        with open(args.out, "wb") as f:
            f.write(data)
        print(f"wrote the bundle of record {bundle['leaf']['index']} against the checkpoint of size "
              f"{bundle['checkpoint']['size']} to {args.out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0


def _from_tiles(args: argparse.Namespace, named: dict) -> dict:
    from evledger_verify.verify import load_trusted_keys
    from proof_api.bundle import bundle_from_tiles

    if set(named) - {"seq", "evidence_id"}:
        raise click.UsageError("with --tiles, name the record with --seq or --evidence-id (tiles have no index of "
                               "content hashes)")
    if args.checkpoint or args.unanchored:
        raise click.UsageError("--checkpoint and --unanchored ask a service; tiles give the published checkpoint")
    try:
        keys = load_trusted_keys(list(args.key), list(args.key_file))
    except (OSError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if keys is None:
        raise click.UsageError("give the ledger's verifier key with --key or --key-file: the published checkpoint "
                               "is checked with it before anything is read from the tiles")
    # BundleError, TileError (ValueErrors) and whatever a hostile publication makes of the rest:
    # one line on stderr, exit 1
    return bundle_from_tiles(args.tiles, args.ledger, keys, seq=args.seq, evidence_id=args.evidence_id,
                             alg=args.hash_alg)
