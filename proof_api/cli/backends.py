"""What the global options open: the log backend and the ledger service over it."""
from __future__ import annotations

import argparse
import os


def sequencer_settings(args: argparse.Namespace):
    from ingest.ledger import SequencerSettings

    return SequencerSettings(batch_max_items=args.batch_max_items, batch_max_delay=args.batch_max_delay)


def open_log(args: argparse.Namespace):
    """The log backend the flags and environment name: RocksDB under the data directory, or
    a KurrentDB server."""
    if args.log == "kurrentdb":
        if not args.kurrentdb_uri:
            raise ValueError("--log kurrentdb needs --kurrentdb-uri or EVLEDGER_KURRENTDB_URI")
        from ingest.log_kurrentdb import KurrentDBLog
        return KurrentDBLog(args.kurrentdb_uri)
    from ingest.log_rocksdb import RocksDBLog
    return RocksDBLog(os.path.join(args.data_dir, "log"))


def open_service(args: argparse.Namespace, start: bool = True):
    from ingest.ledger import LedgerService

    return LedgerService(args.data_dir, open_log(args), sequencer_settings(args), start=start)
