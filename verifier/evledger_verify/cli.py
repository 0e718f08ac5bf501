"""`evledger-verify BUNDLE [--file FILE | --hash SM3] [--rpc URL] [--key VKEY] [--key-file FILE]
[--contract ADDR]`: the verifier's own command, for a court that installs only this
distribution. The same checks, report and exit codes as `evledger verify`: 0 for verdict ①,
1 for ②, 2 for a usage error or a file that cannot be read."""
from __future__ import annotations

import argparse
import sys

from .verify import run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evledger-verify", allow_abbrev=False,  # --ha is not --hash: options as spelt, as the others read them
        description="Check an evledger proof bundle offline: leaf, inclusion path, SM2-signed checkpoint, the "
                    "file, and with --rpc the anchor on chain. Exit 0 only for verdict 1 (in the anchored tree, "
                    "unaltered); 1 for verdict 2; 2 for a usage error or a file that cannot be read.")
    parser.add_argument("bundle", metavar="BUNDLE",
                        help="the proof bundle (JSON), or a certificate (HTML) that embeds one; - for stdin")
    evidence = parser.add_mutually_exclusive_group()
    evidence.add_argument("--file", metavar="FILE", help="the evidence file: its SM3 must be the record's content_hash")
    evidence.add_argument("--hash", metavar="SM3",
                          help="the evidence's SM3 hash (64 hex digits): must be the record's content_hash")
    parser.add_argument("--rpc", metavar="URL", help="an EVM JSON-RPC endpoint of the anchoring chain: check the "
                                                     "anchor on chain")
    parser.add_argument("--key", action="append", default=[], metavar="VKEY",
                        help="a verifier key the ledger published (name+keyid+base64); the checkpoint must be "
                             "signed by one of the keys given (repeat for rotated keys)")
    parser.add_argument("--key-file", action="append", default=[], metavar="FILE",
                        help="a file of such verifier keys, one per line (# comments)")
    parser.add_argument("--contract", metavar="ADDR",
                        help="the anchor registry's address as the consortium published it: the anchor must be there")
    parser.add_argument("--witness", action="append", default=[], metavar="VKEY",
                        help="a witness's cosigning key (name+keyid+base64, type sm2-cosignature/v1): the checkpoint "
                             "must carry its valid cosignature (repeat for several witnesses)")
    parser.add_argument("--witness-threshold", type=_positive_argument, metavar="K",
                        help="how many of the --witness keys must have cosigned (default: all of them)")
    parser.add_argument("--tiles", metavar="URL|DIR",
                        help="the ledger's published static tiles (a URL prefix, or a copy of the directory): the "
                             "published checkpoint must extend the bundle's, hold its leaf and give its inclusion path")
    return parser


def positive_count(text: str) -> int:
    """A count of at least 1 written in ASCII digits; ValueError otherwise."""
    if not text.isascii() or not text.isdigit() or len(text) > 20 or int(text) < 1:
        raise ValueError(f"must be a whole number of at least 1, not {text[:40]!r}")
    return int(text)


def _positive_argument(text: str) -> int:
    try:
        return positive_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.bundle, args.file, args.hash, args.rpc, keys=args.key, key_files=args.key_file,
               contract=args.contract, program="evledger-verify", witnesses=args.witness,
               witness_threshold=args.witness_threshold, tiles=args.tiles)


if __name__ == "__main__":
    sys.exit(main())
