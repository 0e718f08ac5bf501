"""`evledger bench` and `evledger capacity`: bench.suite and bench.capacity, run from this
source checkout with the arguments given (bench/ is not installed, and the service never
imports it)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from .binding import Command

# Every argument, --help included, is the tool's own: click parses none of them.
_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": False, "help_option_names": []}


def _tool(name: str, module: str, text: str) -> click.Command:
    @click.command(name, cls=Command, help=text, context_settings=_PASS_THROUGH)
    @click.argument("tool_args", nargs=-1, type=click.UNPROCESSED, metavar="ARGS")
    def run(args) -> int:
        root = Path(__file__).resolve().parents[2]
        script = root / "bench" / f"{module}.py"
        if not script.is_file():
            print(f"evledger {name}: {script} is missing: run it from a source checkout", file=sys.stderr)
            return 1
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        return subprocess.call([sys.executable, "-m", f"bench.{module}", *args.tool_args], env=env)
    return run


bench = _tool("bench", "suite", "run every benchmark scenario into one report under bench/results/<UTC stamp>/ "
                                "(--quick: a smoke check under two minutes); --help for its options")
capacity = _tool("capacity", "capacity", "what a target load costs in nodes, disk, Kafka partitions and chain "
                                         "transactions, from the latest bench results; --help for its options")
