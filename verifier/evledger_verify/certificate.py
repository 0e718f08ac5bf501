"""Reading the proof bundle out of a data preservation certificate (an HTML page that embeds
it in `<script type="application/json" id="evledger-proof">`), as every verifier must: a
certificate given where a bundle is expected is read through this, so that one file never
gives two bundles. Standard library only. The JS verifier (verifier/js/src/verify.mjs,
`bundleTextOfCertificate`) scans the same way.
"""
from __future__ import annotations

import re
from html import unescape

SCRIPT_ID = "evledger-proof"
MAX_CERTIFICATE_BYTES = 8 << 20  # the bundle, the verifier panel, the font and the QR code fit well within

# A linear scan for the script elements, as a browser's tokenizer finds them: comments are
# skipped, a quoted attribute value may hold ">", the first of two equal attributes counts, and a
# script's text runs to the next "</script". (html.parser takes time quadratic in the length of
# some hostile texts: 200 KB of "<!--" took 22 s.)
# HTML's whitespace ([\t\n\f\r ]), spelt out: regex engines disagree on what \s holds.
_MARKUP = re.compile(r"<!--|<script(?=[\t\n\f\r />])", re.I | re.A)  # re.A: "ſ" is no "s" here
_TAG_REST = re.compile(r"""(?:[^>"']|"[^"]*"|'[^']*')*>""")
_ATTRIBUTE = re.compile(r"""([^\t\n\f\r "'>/=]+)(?:[\t\n\f\r ]*=[\t\n\f\r ]*(?:"([^"]*)"|'([^']*)'|([^\t\n\f\r "'=<>`]+)))?""")
_SCRIPT_END = re.compile(r"</script", re.I | re.A)
# Where a comment ends, as HTML's tokenizer has it: "<!-->" and "<!--->" are whole (empty)
# comments; otherwise the first "-->" or "--!>".
_COMMENT_END = re.compile(r">|->|.*?--!?>", re.S)
# A character reference too long for int() (over 4,300 digits): html.unescape would raise.
# Any with 8 or more significant digits is past U+10FFFF, which unescape reads as U+FFFD anyway.
_HUGE_REFERENCE = re.compile(r"&#(?:0*[1-9][0-9]{7,}|[xX]0*[1-9a-fA-F][0-9a-fA-F]{6,});?")


class CertificateError(ValueError):
    """The text is not a certificate with exactly one embedded bundle."""


def _attributes(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for m in _ATTRIBUTE.finditer(text):
        name, value = m.group(1).lower(), next((v for v in m.group(2, 3, 4) if v is not None), "")
        # the first of two equal attributes counts
        found.setdefault(name, unescape(_HUGE_REFERENCE.sub("\ufffd", value)))
    return found


def embedded_scripts(html_text: str) -> list[str]:
    """The text of every <script type="application/json" id=SCRIPT_ID> element."""
    found, pos = [], 0
    while (m := _MARKUP.search(html_text, pos)) is not None:
        if m.group() == "<!--":
            end = _COMMENT_END.match(html_text, m.end())
            if end is None:
                break  # the rest is a comment
            pos = end.end()
            continue
        tag = _TAG_REST.match(html_text, m.end())
        if tag is None:
            break  # a tag that never closes: the rest is inside it
        close = _SCRIPT_END.search(html_text, tag.end())
        text_end = close.start() if close else len(html_text)
        attributes = _attributes(html_text[m.end():tag.end() - 1])
        if attributes.get("id") == SCRIPT_ID and attributes.get("type") == "application/json":
            found.append(html_text[tag.end():text_end])
        pos = text_end + 1
    return found


def bundle_text(html_text: str) -> str:
    """The one embedded bundle's JSON text, or CertificateError."""
    scripts = embedded_scripts(html_text)
    if len(scripts) != 1:
        raise CertificateError(f"expected one <script type=\"application/json\" id=\"{SCRIPT_ID}\"> element, "
                               f"found {len(scripts)}")
    return scripts[0]


_BOM = b"\xef\xbb\xbf"


def _content(raw: bytes) -> bytes:
    """A file's bytes from its first that is not a leading byte order mark or blank."""
    return raw.removeprefix(_BOM).lstrip(b" \t\r\n")


def is_certificate(raw: bytes) -> bool:
    """Whether a file handed in as a bundle is a certificate: a bundle is a JSON object ("{"),
    a certificate HTML ("<"), after optional whitespace (and, for HTML, a byte order mark,
    which editors add and browsers allow)."""
    return _content(raw)[:1] == b"<"


def is_blank(raw: bytes) -> bool:
    """Nothing but a byte order mark and blanks (so far): what follows decides what it is."""
    return not _content(raw)


def bundle_text_of_file(raw: bytes) -> bytes | str:
    """What to read as the bundle from a file's bytes: the bytes themselves, or the bundle a
    certificate embeds (its text read as strict UTF-8). CertificateError for a certificate
    that is not one."""
    if not is_certificate(raw):
        return raw
    if len(raw) > MAX_CERTIFICATE_BYTES:
        raise CertificateError(f"the certificate is over {MAX_CERTIFICATE_BYTES} bytes, the limit")
    try:
        text = raw.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CertificateError(f"the certificate is not UTF-8 (byte {exc.start}: {exc.reason})") from None
    return bundle_text(text)
