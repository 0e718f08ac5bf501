"""`evledger ledger create|list|rotate-key`: ledgers in the data directory and their keys."""
from __future__ import annotations

import click

from .backends import open_service
from .binding import Group, option

# The tree hash of a new ledger; `stream create-ledger` takes it too.
alg_option = option("--alg", type=click.Choice(("sm3", "sha256")), default="sm3", help="tree hash")


@click.group("ledger", cls=Group, help="create, list and manage ledgers")
def ledger_group() -> None:
    pass


@ledger_group.command("create", help="create a ledger with new SM2 and SM4 keys")
@click.argument("ledger")
@alg_option
def create(args) -> int:
    with open_service(args, start=False) as service:
        ledger = service.create_ledger(args.ledger, alg=args.alg)
        key_id = ledger.created["key_id"]
        print(f"created ledger {ledger.id} ({ledger.alg}, checkpoint origin {ledger.origin}, signing key {key_id})")
        print(f"verifier key: {ledger.created['verifier_key']}")
    return 0


@ledger_group.command("list", help="the ledgers and their sizes")
def list_ledgers(args) -> int:
    with open_service(args, start=False) as service:
        for ledger_id in service.ledgers():
            ledger = service.ledger(ledger_id)
            latest = ledger.latest_checkpoint()
            sealed = latest["size"] if latest else 0
            print(f"{ledger_id}\t{ledger.alg}\trecords {ledger.record_count}\tcheckpointed {sealed}")
    return 0


@ledger_group.command("rotate-key", help="make a new SM2 signing key current (an event in the log)")
@click.argument("ledger")
def rotate_key(args) -> int:
    with open_service(args, start=False) as service:
        ledger = service.ledger(args.ledger)
        key_id, vkey = ledger.rotate_signing_key()
        print(f"ledger {ledger.id}: new signing key {key_id}; checkpoints signed before keep verifying "
              f"with their own key id")
        print(f"verifier key: {vkey}")
    return 0
