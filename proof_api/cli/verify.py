"""`evledger verify` (a proof bundle, offline) and `evledger certificate` (the certificate
rendered from a bundle)."""
from __future__ import annotations

import json
import sys

import click

from .binding import Command, option
from .proof import fetched, named_record, record_options, service_client, service_options


class WholeNumber(click.ParamType):
    """A count of at least 1 in ASCII digits, read as evledger-verify reads it (no '+1', ' 1' or
    other scripts' digits), so both commands take the same command lines."""

    name = "integer"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        from evledger_verify.cli import positive_count

        try:
            return positive_count(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.command("verify", cls=Command,
               help="check a proof bundle (or the one a certificate embeds) offline: leaf, path, signed "
                    "checkpoint, the file, and with --rpc the anchor on chain; exit 0 only for verdict 1")
@click.argument("bundle")
@option("--file", metavar="FILE", help="the evidence file: its SM3 must be the record's content_hash")
@option("--hash", metavar="SM3", help="the evidence's SM3 hash (64 hex digits): must be the record's content_hash")
@option("--rpc", metavar="URL", help="an EVM JSON-RPC endpoint of the anchoring chain: check the anchor on chain")
@option("--key", multiple=True, metavar="VKEY",
        help="a verifier key the ledger published (name+keyid+base64); the checkpoint must be signed by one of "
             "the keys given (repeat for rotated keys)")
@option("--key-file", multiple=True, metavar="FILE", help="a file of such verifier keys, one per line (# comments)")
@option("--contract", metavar="ADDR",
        help="the anchor registry's address as the consortium published it: the anchor must be there")
@option("--witness", multiple=True, metavar="VKEY",
        help="a witness's cosigning key (name+keyid+base64, type sm2-cosignature/v1): the checkpoint must carry "
             "its valid cosignature (repeat for several witnesses)")
@option("--witness-threshold", type=WholeNumber(), metavar="K",
        help="how many of the --witness keys must have cosigned (default: all of them)")
@option("--tiles", metavar="URL|DIR",
        help="the ledger's published static tiles (a URL prefix, or a copy of the directory): the published "
             "checkpoint must extend the bundle's, hold its leaf and give its inclusion path (docs/tiles.md)")
def verify(args) -> int:
    """Offline: needs the bundle and, optionally, the file, the hash or a chain endpoint.
    Exit 0 for verdict 1, 1 for verdict 2, 2 when a file cannot be read."""
    from evledger_verify.verify import run

    if args.file is not None and args.hash is not None:
        raise click.UsageError("--file and --hash both name the evidence: give one")
    return run(args.bundle, args.file, args.hash, args.rpc, keys=list(args.key), key_files=list(args.key_file),
               contract=args.contract, witnesses=list(args.witness), witness_threshold=args.witness_threshold,
               tiles=args.tiles)


@click.command("certificate", cls=Command,
               help="render a data preservation certificate (HTML, or PDF with --pdf) from a bundle, or fetch a "
                    "record's from a service (--ledger with --url), or with --extract take the bundle back out of a "
                    "certificate")
@click.argument("source", metavar="[BUNDLE]", required=False)
@option("-o", "--output", required=True, metavar="FILE",
        help="where to write the HTML (with --extract: the bundle's JSON); - for stdout")
@option("--extract", is_flag=True,
        help="BUNDLE is a certificate (HTML): write the proof bundle embedded in it, read as every verifier "
             "reads a bundle")
@option("--pdf", is_flag=True, help="write the certificate as an A4 PDF, printed by headless Chromium (EVLEDGER_CHROMIUM "
                                    "names the binary; Debian's chromium by default)")
@option("--ledger", metavar="LEDGER", help="instead of BUNDLE: the record's ledger on the service --url names")
@service_options
@record_options
def certificate(args) -> int:
    from proof_api.certificate import extract_bundle, render_certificate, render_pdf

    if (args.source is None) == (args.ledger is None):
        raise click.UsageError("give a BUNDLE, or --ledger (with --url and the record) to fetch it from a service")
    if args.ledger is not None:
        return _remote_certificate(args)
    if any(v is not None for v in (args.seq, args.evidence_id, args.content_hash, args.record_file)):
        raise click.UsageError("--seq, --evidence-id, --content-hash and --file name a record on a service: "
                               "give --ledger and --url with them, not a BUNDLE")
    if args.extract and args.pdf:
        raise click.UsageError("--extract writes a bundle, --pdf a certificate: give one")
    if args.pdf:
        data = render_pdf(_read_bundle(args.source))
        if args.output == "-":
            sys.stdout.buffer.write(data)
            return 0
        with open(args.output, "wb") as f:
            f.write(data)
        print(f"wrote the data preservation certificate (PDF, {len(data):,} bytes) to {args.output}")
        return 0
    if args.extract:
        text = json.dumps(extract_bundle(_read_text(args.source)), ensure_ascii=False, indent=1) + "\n"
        what = "the proof bundle"
    else:
        text = render_certificate(_read_bundle(args.source))
        what = "the data preservation certificate"
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {what} to {args.output}")
    return 0


def _remote_certificate(args) -> int:
    """The service's certificate of the record named (HTML as it renders it); with --pdf the
    record's bundle, printed here."""
    from proof_api.certificate import render_pdf

    if args.extract:
        raise click.UsageError("--extract reads a certificate file, not a service")
    named = named_record(args)
    with service_client(args, args.ledger) as client:
        if args.pdf:
            data = render_pdf(fetched("proof bundle", lambda: client.proof(**named)))
        else:
            data = fetched("certificate", lambda: client.certificate(**named)).encode()
    if args.output == "-":
        sys.stdout.buffer.write(data)
        return 0
    with open(args.output, "wb") as f:
        f.write(data)
    print(f"wrote the data preservation certificate ({'PDF' if args.pdf else 'HTML'}, {len(data):,} bytes) "
          f"from {args.url} to {args.output}")
    return 0


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _read_bundle(path: str) -> dict:
    """The bundle at `path` (- for stdin), read as `evledger verify` reads it (load_bundle):
    a text that one entry point refuses, or reads another way, must not pass another."""
    from evledger_verify.verify import load_bundle, read_bundle_file

    try:
        raw = read_bundle_file(path)
    except OSError as exc:
        raise OSError(f"cannot read the bundle {path}: {exc.strerror}") from None
    try:
        bundle = load_bundle(raw)
    except ValueError as exc:  # StrictJSONError
        raise ValueError(f"{path}: the bundle cannot be read: {exc}") from None
    if not isinstance(bundle, dict):
        raise ValueError(f"{path} is not a proof bundle (a JSON object)")
    return bundle
