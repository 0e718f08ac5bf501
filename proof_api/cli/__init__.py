"""The `evledger` command: the root group, its global options, `main`; each command group
lives in a module of its own."""
from __future__ import annotations

import argparse
import sys

import click
from evledger_client.cli import push

from ingest.ledger import SequencerSettings

from .anchor import anchor_group, anchor_settings, open_chain
from .backends import open_log, open_service, sequencer_settings
from .bench import bench, capacity
from .binding import PARSE_ONLY, Group, option, refuse
from .demo import demo
from .ingest import ingest, rebuild
from .ledger import ledger_group
from .monitor import monitor
from .serve import serve
from .stream import stream_group, stream_settings
from .proof import proof
from .tiles import tiles_group
from .verify import certificate, verify
from .witness import witness_group

__all__ = ["anchor_settings", "cli", "main", "open_chain", "open_log", "open_service", "parse_args",
           "sequencer_settings", "stream_settings"]

_SEQUENCER = SequencerSettings()
_HELP = """The evidence ledger: records in an event-sourced log, SM3 Merkle trees, signed checkpoints
anchored on a chain, and proofs anyone can verify offline.

Every setting is a flag or the EVLEDGER_* variable its --help names; a flag given wins over
its variable. The options below go before the command: evledger --data-dir DIR serve."""


@click.group("evledger", cls=Group, help=_HELP,
             context_settings={"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100})
@option("--data-dir", default="./data", envvar="EVLEDGER_DATA_DIR", metavar="DIR", help="data directory")
@option("--log", type=click.Choice(("rocksdb", "kurrentdb")), default="rocksdb", envvar="EVLEDGER_LOG",
        help="event log backend (rocksdb: in the data directory)")
@option("--kurrentdb-uri", envvar="EVLEDGER_KURRENTDB_URI", metavar="URI",
        help="KurrentDB/EventStoreDB URI for --log kurrentdb")
@option("--batch-max-items", type=int, default=_SEQUENCER.batch_max_items, envvar="EVLEDGER_BATCH_MAX_ITEMS",
        metavar="N", help="seal a checkpoint after this many records")
@option("--batch-max-delay", type=float, default=_SEQUENCER.batch_max_delay, envvar="EVLEDGER_BATCH_MAX_DELAY",
        metavar="S", help="or after the oldest unsealed record waited this many seconds")
def cli(**_global_options) -> None:
    pass  # each command reads them from its namespace (binding.Command)


for _command in (demo, ledger_group, ingest, push, anchor_group, serve, verify, certificate, rebuild, stream_group,
                 monitor, witness_group, tiles_group, proof, bench, capacity):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: the process's); its exit status. A command line
    it cannot use raises SystemExit with status 2, after the message on stderr."""
    try:
        return cli.main(argv, prog_name="evledger", standalone_mode=False)
    except click.UsageError as exc:
        raise refuse(exc) from None
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:  # interrupted while click read the command line
        print("evledger: interrupted", file=sys.stderr)
        return 130


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options a command line gives (flags, then EVLEDGER_* variables, then defaults),
    its command not run: for bench and tests that build what a command would."""
    return cli.main(list(argv), prog_name="evledger", standalone_mode=False, obj=PARSE_ONLY)
