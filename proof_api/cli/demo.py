"""`evledger demo`: the main job, from evledger_dev (a development install only)."""
from __future__ import annotations

import click

from .binding import Command, option


@click.command("demo", cls=Command,
               help="the main job: the service end to end over HTTP, proofs verified offline")
@option("--records", type=int, default=200_000, envvar="EVLEDGER_DEMO_RECORDS", metavar="N",
        help="how many generated records to stream in")
@option("--out", default="demo-output", metavar="DIR", help="where the bundle, files and certificate go")
def demo(args) -> int:
    from evledger_dev.demo import run_demo  # dev-only: imported only when `demo` runs

    return run_demo(records=args.records, out_dir=args.out)
