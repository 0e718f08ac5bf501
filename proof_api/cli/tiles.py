"""`evledger tiles rebuild` (a ledger's static tiles written again from its tree and log) and
`evledger tiles key`."""
from __future__ import annotations

import argparse

import click

from .backends import open_service
from .binding import Group, option
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
