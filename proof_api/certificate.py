"""The data preservation certificate (数据保全证书): one `evledger-proof/1` bundle as a
human-readable, self-contained, print-friendly (A4) HTML page, with the bundle itself embedded.

    html = render_certificate(bundle)     # the page (no external resources: inline CSS, font and QR code)
    bundle == extract_bundle(html)        # the embedded bundle, read back exactly
    pdf = render_pdf(bundle)              # the same page printed to A4 by headless Chromium

The page shows what the bundle *states*; it proves nothing by itself. Its weight is the embedded
bundle, which anyone can extract and check with `evledger verify` (docs/proof-bundle.md),
without trusting whoever issued the certificate. Rendering does not verify the bundle.

The page is the Jinja2 template templates/certificate.html.j2; this module works out the values.

Safety: every value from the bundle is HTML-escaped where it is shown (each {{ }} in the template
goes through `_shown`); in the embedded `<script type="application/json">` every `<`, `>` and `&`
is written as a JSON `\\u` escape (`embed_json`), so no value (`</script>`, `<!--`) can end the
element early, and JSON.parse / json.loads give the exact bundle back. Sealed fields are never
shown, not even as ciphertext.

It also carries a QR code of the values a phone needs to check the record (qr_payload), the CJK
font its text needs, subset and embedded (cjk_font.py), and the verifier page's panel, our own
script (verifier/js), which checks the embedded bundle against a file dropped on the page.

The command is `evledger certificate BUNDLE -o cert.html` (`--pdf` for the PDF), and
`evledger certificate --extract cert.html -o bundle.json` gives the bundle back.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import shlex
from datetime import datetime, timedelta, timezone
from functools import cache
from html import escape
from pathlib import Path
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup

from evledger_verify.certificate import SCRIPT_ID
from evledger_verify.verify import BUNDLE_FORMATS

log = logging.getLogger("evledger.certificate")
QR_SCHEME = "evledger-proof:1"
FONT_FACE_SLOT = "/*evledger-cjk-font*/"  # replaced by the @font-face rule once the page's characters are known
# The verifier page's panel, built from verifier/js into this package's templates (committed,
# reproducible): the certificate carries the same verifier as verifier/js/dist/verify.html, so
# it can check its own bundle offline.
VERIFIER_PANEL = Path(__file__).resolve().parent / "templates" / "verifier-panel.html"
BEIJING = timezone(timedelta(hours=8), "UTC+8")
MISSING = "—"


# --- values ------------------------------------------------------------------------------------


def _shown(value):
    """A value as the page shows it, HTML-escaped: JSON spelling for booleans, objects and arrays,
    a dash for null. Every {{ }} in the template goes through here (the environment's finalize).

    It escapes with html.escape rather than leaving that to autoescape (markupsafe) so quotes keep
    the spelling the page has always had, &quot; and &#x27; (not &#34; and &#39;); returning Markup
    tells autoescape it is done. Autoescape is still needed: it makes macro output Markup, which
    passes here unchanged, as does the embedded bundle."""
    if hasattr(value, "__html__"):
        return value
    if value is None:
        text = MISSING
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    return Markup(escape(text, quote=True))


def _parse_time(text) -> datetime | None:
    """An RFC 3339 date-time with a zone, or None (then it is shown only as written)."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _fmt(moment: datetime, tz: timezone, label: str) -> str:
    local = moment.astimezone(tz)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    if local.microsecond:
        text += f".{local.microsecond:06d}"
    return f"{text} {label}"


def _unix_time(value) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        return datetime.fromtimestamp(value, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _key_parts(verifier_key) -> tuple[str | None, str | None]:
    """(key name, key id hex) of a `<name>+<key id>+<base64>` verifier key, without checking it."""
    if not isinstance(verifier_key, str):
        return None, None
    parts = verifier_key.split("+", 2)
    if len(parts) != 3:
        return None, None
    return parts[0], parts[1]


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


# --- the page ----------------------------------------------------------------------------------


_KNOWN_RECORD_FIELDS = ("business_type", "business_id", "evidence_id", "occurred_at", "content_hash",
                        "signature", "attributes", "sealed")


@cache
def _template() -> Template:
    env = Environment(
        loader=PackageLoader("proof_api", "templates"),
        autoescape=True, finalize=_shown,
        undefined=StrictUndefined,  # a misspelt name fails the render instead of showing nothing
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.globals.update(fmt=_fmt, UTC=timezone.utc, BEIJING=BEIJING, missing=MISSING, script_id=SCRIPT_ID)
    return env.get_template("certificate.html.j2")


def _commands(bundle: dict, checkpoint: dict, anchor: dict) -> tuple[str, str]:
    """`evledger anchor verify` and `cast call` for this anchor, bundle values quoted as a shell
    needs them (a value is text to paste, never markup)."""
    q = lambda value: shlex.quote(str(value))  # noqa: E731
    ledger, origin, size = bundle.get("ledger"), bundle.get("origin"), checkpoint.get("size")
    origin_opt = "" if origin == f"evledger/{ledger}" else f" --origin {q(origin)}"
    anchor_verify = (f"evledger anchor verify {q(ledger)} {q(size)} {q(checkpoint.get('root'))} --rpc <url> "
                     f"--contract {q(anchor.get('contract'))}{origin_opt}")
    cast_call = (f'cast call {q(anchor.get("contract"))} "getAnchor(bytes32,uint64)(bytes32,uint64,uint64)" '
                 f'{q(anchor.get("ledger_key"))} {q(size)} --rpc-url <url>')
    return anchor_verify, cast_call


def embed_json(bundle: dict) -> str:
    """The bundle as JSON that is safe inside a <script> element: `<`, `>`, `&` only as \\u escapes
    (JSON has them only inside strings, where the escapes mean the same characters)."""
    text = json.dumps(bundle, ensure_ascii=False, indent=1, allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def qr_payload(bundle: dict) -> str:
    """What the certificate's QR code carries: the values a phone needs to look the record up and
    check it (ledger, checkpoint origin, record, leaf hash, tree size, root, and the anchor's
    chain, contract and transaction), as one URI-like line (docs/proof-bundle.md, "The certificate's QR code")."""
    leaf, checkpoint = _dict(bundle.get("leaf")), _dict(bundle.get("checkpoint"))
    anchor = _dict(bundle.get("anchor"))
    values = [("ledger", bundle.get("ledger")), ("origin", bundle.get("origin")), ("seq", leaf.get("index")), ("leaf", leaf.get("hash")),
              ("size", checkpoint.get("size")), ("root", checkpoint.get("root")), ("chain", anchor.get("chain_id")),
              ("contract", anchor.get("contract")), ("tx", anchor.get("tx_hash"))]
    return f"{QR_SCHEME}?" + urlencode([(k, "" if v is None else str(v)) for k, v in values])


def _qr_data_uri(payload: str) -> str:
    import segno

    return segno.make(payload, error="l", micro=False).png_data_uri(scale=4, border=4)


def render_certificate(bundle: dict, embed_font: bool = True) -> str:
    """The certificate for one `evledger-proof/1` bundle, as a complete HTML document, with the
    CJK font it needs embedded (cjk_font.py; without a font to embed it is left out, and the
    page falls back to the reader's fonts, with a warning)."""
    html = _render(bundle)
    font_face = ""
    if embed_font:
        from .cjk_font import FontUnavailable, font_face_css
        try:
            font_face = font_face_css("".join(ch for ch in set(html) if ord(ch) > 0x7E))
        except FontUnavailable as exc:
            log.warning("certificate without an embedded CJK font: %s", exc)
    return html.replace(FONT_FACE_SLOT, font_face, 1)


def render_pdf(bundle: dict) -> bytes:
    """The certificate as an A4 PDF, printed by headless Chromium (pdf.py)."""
    from .pdf import html_to_pdf

    return html_to_pdf(render_certificate(bundle))


def _render(bundle: dict) -> str:
    if not isinstance(bundle, dict):
        raise ValueError("a proof bundle is a JSON object")
    if bundle.get("format") not in BUNDLE_FORMATS:
        raise ValueError(f"not an {' or '.join(BUNDLE_FORMATS)} bundle (format {bundle.get('format')!r})")
    event = _dict(bundle.get("record"))
    record = _dict(event.get("record"))
    checkpoint = _dict(bundle.get("checkpoint"))
    inclusion = _dict(bundle.get("inclusion"))
    anchor = bundle.get("anchor") if isinstance(bundle.get("anchor"), dict) else None
    key_name, key_id = _key_parts(checkpoint.get("verifier_key"))
    anchor_verify_cmd, cast_call_cmd = _commands(bundle, checkpoint, anchor) if anchor is not None else (None, None)
    qr_text = qr_payload(bundle)
    return _template().render(
        bundle=bundle, event=event, record=record, leaf=_dict(bundle.get("leaf")),
        checkpoint=checkpoint, anchor=anchor,
        hash_alg=str(bundle.get("hash_alg") or "").upper() or None,
        issued_at=_parse_time(bundle.get("issued_at")),
        received_at=_parse_time(event.get("received_at")),
        occurred_at=_parse_time(record.get("occurred_at")),
        block_time=_unix_time(anchor.get("block_time")) if anchor is not None else None,
        other_record_fields=[(k, v) for k, v in record.items() if k not in _KNOWN_RECORD_FIELDS],
        key_name=key_name, key_id=key_id,
        path=inclusion.get("path") if isinstance(inclusion.get("path"), list) else [],
        anchor_verify_cmd=anchor_verify_cmd, cast_call_cmd=cast_call_cmd,
        # Markup: a script element's text is not HTML-decoded, so HTML escaping would corrupt the
        # JSON; embed_json's \u escapes are what keep every value inside the element.
        bundle_json=Markup(embed_json(bundle)),
        verifier_panel=verifier_panel(), csp=certificate_csp(),
        font_face=Markup(FONT_FACE_SLOT), qr_payload=qr_text, qr_image=_qr_data_uri(qr_text),
    )


@cache
def verifier_panel() -> Markup:
    """The built verifier panel (style, form, script), as it is: our own code, not bundle values."""
    try:
        return Markup(VERIFIER_PANEL.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OSError(f"the verifier panel {VERIFIER_PANEL} cannot be read ({exc.strerror}): build it with "
                      f"`make verifier-page`") from None


@cache
def certificate_csp() -> str:
    """The certificate's Content-Security-Policy: its own data (the font, the QR code, inline
    style), the verifier panel's script alone (by its hash, with WebAssembly for SM3) and
    requests only to the chain RPC URL a reader types in; nothing else loads or runs."""
    panel = verifier_panel()
    script = panel[panel.rindex("<script>") + len("<script>"):panel.rindex("</script>")]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return (f"default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'; "
            f"script-src 'sha256-{digest}' 'wasm-unsafe-eval'; connect-src http: https:; base-uri 'none'; "
            f"form-action 'none'")


# --- reading it back ---------------------------------------------------------------------------


def extract_bundle(html_text: str) -> dict:
    """The proof bundle embedded in a certificate, read as every verifier reads one
    (evledger_verify.certificate, then load_bundle)."""
    from evledger_verify.certificate import bundle_text
    from evledger_verify.verify import load_bundle

    bundle = load_bundle(bundle_text(html_text))
    if not isinstance(bundle, dict) or bundle.get("format") not in BUNDLE_FORMATS:
        raise ValueError(f"the embedded JSON is not an {' or '.join(BUNDLE_FORMATS)} bundle")
    return bundle


if __name__ == "__main__":
    # Certificates issued before `evledger certificate --extract` print
    # `python3 -m proof_api.certificate extract certificate.html -o bundle.json`, and they are
    # kept for years: that line stays a spelling of the one command.
    import sys

    from proof_api.cli import main

    given = sys.argv[1:]
    verb, rest = (given[0], given[1:]) if given[:1] in (["extract"], ["render"]) else ("render", given)
    sys.exit(main(["certificate", *(["--extract"] if verb == "extract" else []), *rest]))
