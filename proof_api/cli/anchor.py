"""`evledger anchor now|status|verify|deploy`, and the chain options `serve` shares with them."""
from __future__ import annotations

import argparse
import re
import sys
import time

import click

from .backends import open_service
from .binding import Group, option


def chain_options(required: tuple[str, ...] = ()):
    """The chain options. They belong to each action, so they read naturally after it:
    `evledger anchor verify LEDGER SIZE ROOT --rpc URL --contract ADDRESS`. `required` names
    the ones (rpc, contract) a command cannot do without."""
    options = (
        option("--rpc", envvar="EVLEDGER_CHAIN_RPC", metavar="URL", required="rpc" in required,
               help="EVM JSON-RPC endpoint; without it, the in-process chain, which lives only as long as "
                    "the process"),
        option("--chain-id", type=int, envvar="EVLEDGER_CHAIN_ID", metavar="ID",
               help="refuse an endpoint serving another chain id"),
        option("--contract", envvar="EVLEDGER_CONTRACT", metavar="ADDRESS", required="contract" in required,
               help="AnchorRegistry address"),
        option("--confirmations", type=int, default=1, envvar="EVLEDGER_CONFIRMATIONS", metavar="N",
               help="blocks deep, counting the anchoring block, before an anchor is confirmed (1 is enough on "
                    "PBFT chains such as FISCO BCOS)"),
        option("--anchor-min-interval", type=float, default=10.0, envvar="EVLEDGER_ANCHOR_MIN_INTERVAL",
               metavar="S", help="seconds between anchors of one ledger"),
    )

    def decorate(command):
        for each in reversed(options):
            command = each(command)
        return command
    return decorate


def open_chain(args: argparse.Namespace):
    """The chain the flags and environment name: a JSON-RPC endpoint, or the in-process one."""
    from anchor.chain import Web3Chain, anchoring_key_from_env

    if not args.rpc:
        return Web3Chain.in_process()
    if not args.contract:
        raise ValueError("--rpc needs --contract ADDRESS (env EVLEDGER_CONTRACT); `evledger anchor deploy` makes one")
    key = anchoring_key_from_env()
    if not key:
        raise ValueError("anchoring to --rpc needs the anchoring account's key: EVLEDGER_ANCHOR_KEY_FILE "
                         "(a 0600 file with the hex key) or EVLEDGER_ANCHOR_KEY")
    return Web3Chain.from_rpc(args.rpc, args.contract, key, chain_id=args.chain_id)


def anchor_settings(args: argparse.Namespace):
    from anchor.worker import AnchorSettings

    return AnchorSettings(min_interval=args.anchor_min_interval, confirmations=args.confirmations)


@click.group("anchor", cls=Group, help="anchor checkpoints on the chain, and check anchors")
def anchor_group() -> None:
    pass


@anchor_group.command("now", help="anchor a ledger's latest checkpoint now and wait for its confirmation")
@click.argument("ledger")
@chain_options()
@option("--timeout", type=float, default=120.0, metavar="S", help="seconds to wait for confirmation")
def now(args) -> int:
    from anchor.worker import AnchorWorker

    chain = open_chain(args)
    with open_service(args) as service:
        ledger = service.ledger(args.ledger)
        checkpoint = ledger.latest_checkpoint()
        if checkpoint is None:
            raise ValueError(f"ledger {args.ledger!r} has no checkpoint to anchor yet")
        worker = AnchorWorker(service, chain, anchor_settings(args))
        worker.anchor_now(args.ledger)
        anchor = worker.wait_confirmed(args.ledger, checkpoint["size"], timeout=args.timeout)
        if anchor is None:
            print(f"evledger anchor now: not confirmed within {args.timeout:.0f} s "
                  f"({worker.metrics.last_error or 'still pending'})", file=sys.stderr)
            return 1
        print(f"ledger {ledger.id}: size {anchor['size']} root {anchor['root']} anchored on chain {anchor['chain_id']} "
              f"contract {anchor['contract']} in tx {anchor['tx_hash']}, block {anchor['block_number']} "
              f"({anchor['block_hash']}), {anchor['confirmations']} confirmation(s)")
    return 0


@anchor_group.command("status", help="a ledger's anchors and their states")
@click.argument("ledger")
@chain_options()
def status(args) -> int:
    with open_service(args, start=False) as service:
        ledger = service.ledger(args.ledger)
        anchors = ledger.anchors()
        if not anchors:
            print(f"ledger {ledger.id}: no anchors yet")
        for a in anchors:
            where = f"block {a['block_number']}" if a.get("block_number") else f"tx {a.get('tx_hash')}"
            extra = f" ({a['reason']})" if a["status"] == "failed" else ""
            print(f"{a['size']}\t{a['status']}\t{where}{extra}")
    return 0


@anchor_group.command("verify", help="check an anchor straight on the chain (no data directory needed)")
@click.argument("ledger")
@click.argument("size", type=int)
@click.argument("root")
@chain_options(required=("rpc", "contract"))
@option("--origin", metavar="ORIGIN", help="the ledger's checkpoint origin (default evledger/LEDGER)")
def verify(args) -> int:
    return verify_anchor(args.rpc, args.contract, args.ledger, args.size, args.root, args.origin)


def verify_anchor(rpc: str, contract_address: str, ledger: str, size: int, root_hex: str,
                  origin: str | None) -> int:
    """Read the anchor straight from the chain, as the offline verifier does (plain JSON-RPC):
    needs no data directory and no service."""
    from evledger_verify.chain import JsonRpc, RpcError, get_anchor, ledger_key

    origin = origin or f"evledger/{ledger}"
    try:
        root = bytes.fromhex(root_hex)
    except ValueError:
        raise ValueError(f"ROOT must be 64 hex digits, got {root_hex!r}") from None
    if len(root) != 32 or size < 1:
        raise ValueError("ROOT must be 32 bytes (64 hex digits) and SIZE at least 1")
    if not re.fullmatch(r"0x[0-9a-fA-F]{40}", contract_address):
        raise ValueError(f"--contract {contract_address!r} is not an address (0x and 40 hex digits)")
    try:
        found = get_anchor(JsonRpc(rpc).eth_call, contract_address, ledger_key(origin), size)
    except (RpcError, ValueError) as exc:
        raise OSError(f"cannot read the anchor from {rpc}: {exc}") from None
    print(f"chain {rpc}, contract {contract_address}, ledger origin {origin!r} (key 0x{ledger_key(origin).hex()})")
    if found is None:
        print(f"NOT ANCHORED: the contract holds no anchor for size {size}")
        return 1
    if found.root != root:
        print(f"MISMATCH: the contract holds root {found.root.hex()} for size {size}, not {root.hex()}")
        return 1
    print(f"VERIFIED: size {size} root {root.hex()} anchored in block {found.block_number} at "
          f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(found.timestamp))}")
    return 0


@anchor_group.command("deploy", help="deploy the AnchorRegistry contract to --rpc with the anchoring key")
@chain_options(required=("rpc",))
def deploy(args) -> int:
    from eth_account import Account
    from web3 import HTTPProvider, Web3

    from anchor.chain import anchoring_key_from_env, deploy_registry

    key = anchoring_key_from_env()
    if not key:
        raise ValueError("deploying needs the admin account's key: EVLEDGER_ANCHOR_KEY_FILE or EVLEDGER_ANCHOR_KEY")
    w3 = Web3(HTTPProvider(args.rpc, request_kwargs={"timeout": 30}))
    account = Account.from_key(key)
    address = deploy_registry(w3, account=account)
    print(f"AnchorRegistry deployed at {address} on chain {w3.eth.chain_id}; "
          f"admin and first anchorer {account.address}")
    return 0
