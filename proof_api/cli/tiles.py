"""`evledger tiles rebuild` (a ledger's static tiles written again from its tree and log) and
`evledger proof --tiles` (a proof bundle built from a ledger's published tiles alone)."""
from __future__ import annotations

import argparse
import sys

import click
import orjson

from .backends import open_service
from .binding import Command, Group, option
from .serve import tiles_dir


@click.group("tiles", cls=Group, help="the ledgers' static C2SP tlog-tiles publication (docs/tiles.md)")
def tiles_group() -> None:
    pass


@tiles_group.command("rebuild", help="write a ledger's publication directory again from its tree and log (a "
                                     "backfill, or after damage); the service must be stopped")
@click.argument("ledger")
@option("--tiles-dir", envvar="EVLEDGER_TILES_DIR", metavar="DIR",
        help="the tiles root, a folder per ledger (default: DATA_DIR/tiles)")
def rebuild(args: argparse.Namespace) -> int:
    from ingest.publication import TilePublisher

    with open_service(args, start=False) as service:
        ledger = service.ledger(args.ledger)
        publisher = TilePublisher(ledger, tiles_dir(args))
        files = publisher.files
        size = publisher.rebuild()
        print(f"published ledger {ledger.id} at tree size {size:,} in {files.directory}: {files.written:,} files, "
              f"{files.bytes_written:,} bytes written")
    return 0


@tiles_group.command("key", help="print the Ed25519 verifier key that also signs a SHA-256 ledger's published "
                                 "checkpoint (for transparency-log tooling; made on first use)")
@click.argument("ledger")
def key(args: argparse.Namespace) -> int:
    from merkle.checkpoint import ed25519_verifier_key

    with open_service(args, start=False) as service:
        ledger = service.ledger(args.ledger)
        if ledger.alg != "sha256":
            raise click.UsageError(f"ledger {ledger.id} hashes with {ledger.alg}: its published checkpoint carries "
                                   f"the SM2 signature alone (tlog-tiles tooling cannot read an SM3 tree anyway)")
        print(ed25519_verifier_key(ledger.origin, ledger.keys.tiles_key()))
    return 0


@click.command("proof", cls=Command,
               help="build a record's proof bundle (evledger-proof/2) from the ledger's published static tiles "
                    "alone, against the published checkpoint; it carries no anchor (tiles have none)")
@click.argument("ledger")
@option("--tiles", required=True, metavar="URL|DIR",
        help="the ledger's publication: a URL prefix (…/tiles/LEDGER) or a copy of its directory")
@option("--seq", type=click.IntRange(min=0), metavar="N", help="the record's index in the ledger")
@option("--evidence-id", metavar="ID",
        help="the record's evidence id (tiles have no index: the entries are read up to it)")
@option("--key", multiple=True, metavar="VKEY", help="the ledger's verifier key (repeat for rotated keys)")
@option("--key-file", multiple=True, metavar="FILE", help="a file of verifier keys, one per line (# comments)")
@option("--hash-alg", type=click.Choice(("sm3", "sha256")),
        help="the ledger's tree hash (default: found from the tiles, reading entry bundle 0 too)")
@option("--out", metavar="FILE", help="write the bundle here (default: standard output)")
def proof(args: argparse.Namespace) -> int:
    from evledger_verify.verify import load_trusted_keys
    from proof_api.bundle import bundle_from_tiles

    if (args.seq is None) == (args.evidence_id is None):
        raise click.UsageError("name the record with one of --seq and --evidence-id")
    try:
        keys = load_trusted_keys(list(args.key), list(args.key_file))
    except (OSError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if keys is None:
        raise click.UsageError("give the ledger's verifier key with --key or --key-file: the published checkpoint "
                               "is checked with it before anything is read from the tiles")
    try:
        bundle = bundle_from_tiles(args.tiles, args.ledger, keys, seq=args.seq, evidence_id=args.evidence_id,
                                   alg=args.hash_alg)
    except ValueError as exc:  # BundleError, TileError, and whatever a hostile publication makes of the rest
        print(f"evledger proof: {exc}", file=sys.stderr)
        return 1
    data = orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n"
    if args.out:
        with open(args.out, "wb") as f:
            f.write(data)
        print(f"wrote the bundle of record {bundle['leaf']['index']} against the published checkpoint of size "
              f"{bundle['checkpoint']['size']} to {args.out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0
