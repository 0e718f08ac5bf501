"""`evledger serve`: ingest, sequencer, anchor worker and the HTTP API in one process."""
from __future__ import annotations

import argparse
import signal
import sys

import click

from .anchor import anchor_settings, chain_options, open_chain
from .backends import open_log, sequencer_settings
from .binding import Command, OutOfRange, Seconds, option


def _holds_one_batch(ctx: click.Context, param: click.Parameter, mib: int) -> int:
    from proof_api.bodies import MAX_BATCH_BYTES, MIB  # the app's modules: only when serving

    if mib < MAX_BATCH_BYTES // MIB:  # a chunked batch is charged the whole limit
        raise OutOfRange(f"must hold one full batch, at least {MAX_BATCH_BYTES // MIB}, not {mib}", ctx, param)
    return mib


@click.command("serve", cls=Command, help="run ingest, sequencer, anchor worker and the HTTP API in one process")
@chain_options()
@option("--host", default="127.0.0.1", envvar="EVLEDGER_HOST", metavar="HOST", help="address to listen on")
@option("--port", type=int, default=8080, envvar="EVLEDGER_PORT", metavar="PORT", help="port")
@option("--file-store", envvar="EVLEDGER_FILE_STORE", metavar="DIR",
        help="keep uploaded files in DIR, by ledger and SM3, and serve them to auditors (default: keep only "
             "their SM3)")
@option("--ssl-certfile", envvar="EVLEDGER_SSL_CERTFILE", metavar="FILE",
        help="serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile")
@option("--ssl-keyfile", envvar="EVLEDGER_SSL_KEYFILE", metavar="FILE", help="its unencrypted PEM private key")
@option("--header-timeout", type=Seconds(), default=10.0, envvar="EVLEDGER_HEADER_TIMEOUT", metavar="S",
        help="a request line and headers must arrive within S seconds, else 408 request_timeout and the "
             "connection closes")
@option("--body-timeout", type=Seconds(), default=30.0, envvar="EVLEDGER_BODY_TIMEOUT", metavar="S",
        help="a request body must arrive within S seconds plus one second per 64 KiB, and never pause for S/2 "
             "seconds; else 408 body_timeout")
@option("--ledger-in-flight-mib", type=int, default=64, envvar="EVLEDGER_LEDGER_IN_FLIGHT_MIB", metavar="MIB",
        callback=_holds_one_batch,
        help="submissions in flight per ledger, in MiB of body, before producers get 429 with Retry-After (at "
             "least 16; the whole service takes four times that, at least 256)")
@option("--witness-config", envvar="EVLEDGER_WITNESS_CONFIG", metavar="FILE",
        help="a TOML file naming the ledgers' witnesses (URL and cosigning key) and how many must cosign "
             "(docs/witness.md): each checkpoint is sent to them and their cosignatures logged")
@option("--publish-tiles", is_flag=True, envvar="EVLEDGER_PUBLISH_TILES",
        help="after each checkpoint, write every ledger as static C2SP tlog-tiles (hash tiles, entry bundles, the "
             "signed checkpoint) to --tiles-dir and serve them read-only under /tiles/LEDGER/ (docs/tiles.md)")
@option("--tiles-dir", envvar="EVLEDGER_TILES_DIR", metavar="DIR",
        help="where the tiles are published, a folder per ledger (default: DATA_DIR/tiles); any static server "
             "can serve it unchanged")
def serve(args: argparse.Namespace) -> int:
    from evledger_common.stopping import hold_while_closing, ignore_for_exit
    from proof_api.runtime import Runtime
    from proof_api.serving import check_tls_files, raise_open_files_limit

    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise click.UsageError("--ssl-certfile and --ssl-keyfile (env EVLEDGER_SSL_CERTFILE, EVLEDGER_SSL_KEYFILE) "
                               "go together: give both or neither")
    if args.ssl_certfile:  # before anything opens: uvicorn would fail late, with a traceback
        check_tls_files(args.ssl_certfile, args.ssl_keyfile)
    witness_config = None
    if args.witness_config:
        from witness.collector import load_witness_config

        try:
            witness_config = load_witness_config(args.witness_config)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--witness-config (or EVLEDGER_WITNESS_CONFIG)") from None
    raise_open_files_limit()
    chain = open_chain(args)
    runtime = Runtime(args.data_dir, open_log(args), sequencer_settings(args), chain, anchor_settings(args),
                      file_store=args.file_store or None, witness_config=witness_config,
                      tiles_dir=tiles_dir(args) if args.publish_tiles else None)
    try:
        admin_key = runtime.bootstrap_admin_key()
        if admin_key:
            print(f"evledger serve: the service admin's API key was written to {admin_key} (0600); "
                  f"use it to create ledgers and their keys", file=sys.stderr)
        _serve_http(args, runtime)
    finally:
        hold_while_closing()  # the server's handlers are still in place until here
        runtime.close()  # sequencers flushed, databases closed: a clean stop
        ignore_for_exit()
    return 0


def tiles_dir(args: argparse.Namespace) -> str:
    import os

    return args.tiles_dir or os.path.join(args.data_dir, "tiles")


def _serve_http(args: argparse.Namespace, runtime) -> None:
    """Run the API until a signal ends serving."""
    import uvicorn

    from proof_api.app import create_app
    from proof_api.bodies import MIB, BodyTimeouts, InFlight
    from proof_api.serving import protocol_class

    app = create_app(runtime, InFlight(per_ledger=args.ledger_in_flight_mib * MIB,
                                       total=max(256, 4 * args.ledger_in_flight_mib) * MIB),
                     BodyTimeouts.scaled(args.body_timeout))
    metrics = runtime.metrics

    def refused(status: int, code: str) -> None:  # answered below the app: counted here
        metrics.requests.labels(f"{status // 100}xx").inc()
        metrics.errors.labels(code).inc()

    # proxy_headers off: IP rules must see the real peer, not an X-Forwarded-For any local
    # client can write. The protocol adds the header timeout and size limits uvicorn lacks
    # (proof_api/serving.py); ws off: no route takes a WebSocket, so no upgrade hands the
    # connection to a library outside those limits. limit_max_requests stays off: uvicorn
    # would stop serving after that many requests, a count any client can run up.
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            access_log=False, timeout_graceful_shutdown=10, proxy_headers=False,
                            http=protocol_class(args.header_timeout, refused), ws="none",
                            limit_max_requests=None, ssl_certfile=args.ssl_certfile or None,
                            ssl_keyfile=args.ssl_keyfile or None)
    _server_class()(config).run()


def _server_class():
    import contextlib

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT once it has shut down, and puts the default
        handlers back first, so the first or a repeated signal kills the process before the
        ledgers close. Here a signal only ends serving, its handler stays until `serve` puts
        evledger_common.stopping's in its place, and `serve` returns."""

        @contextlib.contextmanager
        def capture_signals(self):
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self.handle_exit)
            yield

        def handle_exit(self, sig, frame) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

    return Server
