"""`evledger`: one command, subcommands. Configuration: flags, then EVLEDGER_* variables."""
from __future__ import annotations

import argparse
import os
import sys


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(records=args.records, batch=args.batch, alg=args.alg)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evledger", description=__doc__)
    parser.add_argument("--data-dir", default=os.environ.get("EVLEDGER_DATA_DIR", "./data"),
                        help="data directory (env EVLEDGER_DATA_DIR; default ./data)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="build an SM3 Merkle log over generated evidence records and prove things about it")
    demo.add_argument("--records", type=int, default=int(os.environ.get("EVLEDGER_DEMO_RECORDS", "5000")),
                      help="how many evidence-like records to generate (default 5000)")
    demo.add_argument("--batch", type=int, default=512, help="records per append batch (default 512)")
    demo.add_argument("--alg", choices=("sm3", "sha256"), default="sm3", help="tree hash (default sm3)")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"evledger {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
