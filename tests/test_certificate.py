"""The data preservation certificate (proof_api/certificate.py), rendered from real bundles.

One module-scoped ledger on the in-process chain: records (one plain, one with a signature,
attributes holding HTML/script payloads, and sealed fields), a checkpoint, an unanchored bundle
taken before anchoring, then an anchor and the anchored bundles. The certificate must show the
record, hashes, checkpoint and anchor; escape every value; hide sealed fields; and carry the
bundle so that extract_bundle gives it back exactly.

The headless Chromium checks (PNG screenshot, A4 PDF, the DOM as the browser parsed it) run
when a chromium binary is found (or EVLEDGER_CHROMIUM names one), and are skipped otherwise:
`make test` does not need Chromium.
"""
from __future__ import annotations

import copy
import re
import subprocess
import shutil
import os
import json
import struct
import sys
from datetime import datetime, timezone
from html import escape, unescape
from urllib.parse import parse_qsl, urlsplit

import pytest

from anchor.chain import Web3Chain
from anchor.worker import AnchorSettings, AnchorWorker
from ingest.ledger import LedgerService, Receipt
from ingest.sequencer import SequencerSettings
from proof_api.bundle import build_bundle
from proof_api.certificate import SCRIPT_ID, VERIFIER_PANEL, extract_bundle, qr_payload, render_certificate
from tests.browser import needs_chromium, run_chromium
from tests.ci import in_ci
from tests.sample_records import rec

XSS = "</script><script>alert(1)</script>"
BOLD = "<b>bold</b> & \"quoted\" 'single'"
SEALED_SECRET = "110101199003077777"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """{'plain', 'hostile', 'unanchored'}: real evledger-proof/2 bundles from one ledger."""
    service = LedgerService(tmp_path_factory.mktemp("cert") / "data", settings=SequencerSettings(batch_max_delay=0.05))
    try:
        ledger = service.create_ledger("acme")
        records = [rec(i, evidence_id=f"ev-{i}", business_id="acct/778812") for i in range(5)]
        records.append(rec(
            5, evidence_id="ev-hostile", business_id="acct/778812",
            signature={"algorithm": "SM2-SM3", "signer_id": f"CN=Broker {BOLD}", "value": "MEUCIQDv0mZ1sW1l"},
            attributes={"note": XSS, "branch": BOLD, "amount_cents": 120000, "risk_confirmed": True},
            sealed={"id_number": SEALED_SECRET, "phone": "13800000000"}))
        receipts = ledger.submit(records)
        assert all(isinstance(r, Receipt) for r in receipts), receipts
        assert ledger.wait_for_checkpoint(len(records), timeout=10) is not None
        unanchored = build_bundle(ledger, 2, require_anchor=False)

        worker = AnchorWorker(service, Web3Chain.in_process(), AnchorSettings(min_interval=0, poll_interval=0.05))
        worker.anchor_now("acme")
        assert worker.wait_confirmed("acme", len(records), timeout=30) is not None
        yield {"plain": build_bundle(ledger, 2), "hostile": build_bundle(ledger, 5), "unanchored": unanchored}
    finally:
        service.close()


# --- content -----------------------------------------------------------------------------------


def test_certificate_shows_the_record_hashes_checkpoint_and_anchor(bundles):
    bundle = bundles["plain"]
    html = render_certificate(bundle)
    record = bundle["record"]["record"]
    anchor = bundle["anchor"]
    assert anchor is not None
    assert html.startswith("<!DOCTYPE html>")
    for text in ("数据保全证书", "Data Preservation Certificate", "Ledger and origin", "The record",
                 "The checkpoint", "The anchor", "How to verify", "Embedded proof bundle"):
        assert text in html
    for value in (bundle["ledger"], bundle["origin"], record["business_type"], record["business_id"],
                  record["evidence_id"], record["occurred_at"], record["content_hash"],
                  bundle["leaf"]["hash"], bundle["checkpoint"]["root"], anchor["tx_hash"], anchor["block_hash"],
                  anchor["contract"], anchor["ledger_key"]):
        assert escape(value) in html, value
    assert f'<span class="mono">{bundle["checkpoint"]["size"]}</span>' in html      # tree size
    assert f'<span class="mono">{bundle["leaf"]["index"]}</span>' in html           # leaf index
    assert f'<span class="mono">{anchor["block_number"]}</span>' in html            # block number
    assert f'<span class="mono">{anchor["chain_id"]}</span>' in html
    key_id = bundle["checkpoint"]["verifier_key"].split("+")[1]
    assert key_id in html
    for line in bundle["checkpoint"]["note"].splitlines():                          # the signed note, verbatim
        assert escape(line) in html
    for node in bundle["inclusion"]["path"]:
        assert node in html


def test_times_are_shown_in_utc_and_beijing_time(bundles):
    bundle = bundles["plain"]
    html = render_certificate(bundle)
    block = datetime.fromtimestamp(bundle["anchor"]["block_time"], timezone.utc)
    assert block.strftime("%Y-%m-%d %H:%M:%S UTC") in html
    beijing = datetime.fromtimestamp(bundle["anchor"]["block_time"] + 8 * 3600, timezone.utc)
    assert beijing.strftime("%Y-%m-%d %H:%M:%S") + " 北京时间 UTC+8" in html
    received = datetime.fromisoformat(bundle["record"]["received_at"].replace("Z", "+00:00"))
    assert received.strftime("%Y-%m-%d %H:%M:%S.%f UTC") in html
    # occurred_at 2024-05-01T09:30:00Z: as written, and in both zones
    assert "2024-05-01 09:30:00 UTC" in html and "2024-05-01 17:30:00 北京时间 UTC+8" in html


def test_how_to_verify_names_the_commands_with_this_bundles_values(bundles):
    bundle = bundles["plain"]
    html = render_certificate(bundle)
    cp, anchor = bundle["checkpoint"], bundle["anchor"]
    assert "evledger-verify certificate.html --file &lt;file&gt; --rpc &lt;url&gt; --key &lt;published key&gt;" in html
    assert (f"evledger anchor verify acme {cp['size']} {cp['root']} --rpc &lt;url&gt; "
            f"--contract {anchor['contract']}") in html
    assert (f'cast call {anchor["contract"]} &quot;getAnchor(bytes32,uint64)(bytes32,uint64,uint64)&quot; '
            f'{anchor["ledger_key"]} {cp["size"]} --rpc-url &lt;url&gt;') in html
    assert "docs/proof-bundle.md" in html


def without_verifier(html: str) -> str:
    """The certificate less its verifier panel, which must be there exactly once and be the
    committed build of verifier/js: the only executable script in the page is our own."""
    panel = VERIFIER_PANEL.read_text(encoding="utf-8")
    assert html.count(panel) == 1
    return html.replace(panel, "")


def test_page_is_self_contained(bundles):
    html = without_verifier(render_certificate(bundles["plain"]))
    # The font and the QR code are inside the page, as data: URLs; nothing else may point out.
    assert html.count("url(data:font/woff2;base64,") == 1 and html.count('src="data:image/png;base64,') == 1
    html = re.sub(r'url\(data:font/woff2;base64,[A-Za-z0-9+/=]+\)|src="data:image/png;base64,[A-Za-z0-9+/=]+"', "", html)
    lowered = html.lower()
    for external in ("<link", "src=", "@import", "url(", "http://", "https://"):
        assert external not in lowered, external
    assert "@page" in html and "size: A4" in html
    assert html.count("<script") == 1  # only the embedded bundle: no executable script but the verifier's


# --- the embedded bundle -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["plain", "hostile", "unanchored"])
def test_embedded_bundle_round_trips_exactly(bundles, name):
    bundle = bundles[name]
    html = render_certificate(bundle)
    assert f'<script type="application/json" id="{SCRIPT_ID}">' in html
    back = extract_bundle(html)
    assert back == bundle
    assert json.dumps(back, sort_keys=True) == json.dumps(bundle, sort_keys=True)  # types too (int stays int)


def test_extract_refuses_a_page_without_a_bundle():
    with pytest.raises(ValueError, match="evledger-proof"):
        extract_bundle("<html><body><p>no bundle here</p></body></html>")


# --- escaping and sealed fields ----------------------------------------------------------------


def test_hostile_values_are_escaped_everywhere_and_still_round_trip(bundles):
    bundle = bundles["hostile"]
    assert bundle["record"]["record"]["attributes"]["note"] == XSS
    html = without_verifier(render_certificate(bundle))
    # No raw tag from the record anywhere: not in the page, not in the embedded JSON.
    assert "<script>" not in html and "alert(1)</script>" not in html
    assert "<b>" not in html and "</b>" not in html
    assert html.count("<script") == 1 and html.count("</script>") == 1
    # Shown, escaped, as text.
    assert escape(XSS) in html
    assert escape(BOLD) in html
    assert extract_bundle(html) == bundle


def test_hostile_bundle_fields_outside_the_record_are_escaped_too(bundles):
    bundle = copy.deepcopy(bundles["plain"])
    bundle["ledger"] = "<img src=x onerror=alert(1)>"
    bundle["origin"] = "evledger/<i>x</i>"
    bundle["checkpoint"]["note"] = "note </pre><script>alert(2)</script>"
    bundle["anchor"]["tx_hash"] = "0x<svg onload=alert(3)>"
    bundle["anchor"]["contract"] = "0x'; rm -rf / #"
    html = without_verifier(render_certificate(bundle))
    for raw in ("<img src=x", "<i>", "<svg", "</pre><script>", "<script>alert"):
        assert raw not in html, raw
    assert html.count("<script") == 1
    assert "&#x27;; rm -rf / #&#x27;" in html  # shell-quoted in the commands, then escaped
    assert extract_bundle(html) == bundle


def test_sealed_fields_are_shown_only_as_sealed(bundles):
    bundle = bundles["hostile"]
    sealed = bundle["record"]["record"]["sealed"]
    assert set(sealed) == {"alg", "ciphertext", "nonce"}  # the leaf holds ciphertext only
    html = render_certificate(bundle)
    assert "sealed (encrypted, committed as ciphertext)" in html
    assert SEALED_SECRET not in html and "13800000000" not in html
    visible = html.split(f'<script type="application/json" id="{SCRIPT_ID}">')[0]
    assert sealed["ciphertext"] not in visible and sealed["nonce"] not in visible


def test_signature_and_attributes_are_shown(bundles):
    html = render_certificate(bundles["hostile"])
    assert "SM2-SM3" in html and "MEUCIQDv0mZ1sW1l" in html and escape(f"CN=Broker {BOLD}") in html
    assert "amount_cents" in html and ">120000<" in html and ">true<" in html


# --- not anchored ------------------------------------------------------------------------------


def test_unanchored_bundle_says_not_anchored(bundles):
    bundle = bundles["unanchored"]
    assert bundle["anchor"] is None
    html = render_certificate(bundle)
    assert "Not anchored" in html and "未锚定" in html
    assert "evledger anchor verify" not in html and "cast call" not in html
    assert "evledger-verify certificate.html" in html
    assert bundle["checkpoint"]["root"] in html


def test_render_refuses_what_is_not_a_bundle():
    with pytest.raises(ValueError):
        render_certificate({"format": "something-else/1"})
    with pytest.raises(ValueError):
        render_certificate(["not", "a", "dict"])


# --- headless Chromium -------------------------------------------------------------------------


@needs_chromium
def test_chromium_renders_the_certificate_to_png_and_a4_pdf(bundles, tmp_path):
    page = tmp_path / "cert.html"
    page.write_text(render_certificate(bundles["hostile"]), encoding="utf-8")
    png = tmp_path / "cert.png"
    result = run_chromium(tmp_path, f"--screenshot={png}", "--window-size=1240,1754", page.as_uri())
    assert png.exists(), result.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])  # IHDR
    assert (width, height) == (1240, 1754)
    assert len(data) > 30_000, f"screenshot is only {len(data)} bytes: a blank page?"

    pdf = tmp_path / "cert.pdf"
    result = run_chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri())
    assert pdf.exists(), result.stderr[-2000:]
    body = pdf.read_bytes()
    assert body.startswith(b"%PDF-")
    assert b"/MediaBox [0 0 594.9" in body  # A4 (595 x 842 pt), from the page's @page rule


@needs_chromium
def test_chromium_parses_the_embedded_bundle_intact(bundles, tmp_path):
    """The DOM as the browser built it: one script element, the hostile values did not break
    out of it, and the bundle read from that DOM is still exact."""
    bundle = bundles["hostile"]
    page = tmp_path / "cert.html"
    page.write_text(render_certificate(bundle), encoding="utf-8")
    result = run_chromium(tmp_path, "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert dom.count("<script") == 2  # the embedded bundle and the verifier panel's code
    assert "<b>" not in dom
    assert extract_bundle(dom) == bundle


# --- the QR code, the embedded CJK font, the PDF -------------------------------------------------


def test_the_qr_payload_names_what_a_phone_needs(bundles):
    bundle = bundles["plain"]
    values = dict(parse_qsl(urlsplit(qr_payload(bundle)).query))
    anchor, checkpoint, leaf = bundle["anchor"], bundle["checkpoint"], bundle["leaf"]
    assert qr_payload(bundle).startswith("evledger-proof:1?")
    assert values == {"ledger": "acme", "origin": "evledger/acme", "seq": str(leaf["index"]), "leaf": leaf["hash"], "size": str(checkpoint["size"]),
                      "root": checkpoint["root"], "chain": str(anchor["chain_id"]), "contract": anchor["contract"],
                      "tx": anchor["tx_hash"]}


@needs_chromium
def test_the_qr_code_read_from_the_rendered_page_gives_the_bundles_values(bundles, tmp_path):
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    for name in ("plain", "hostile"):
        page = tmp_path / f"{name}.html"
        page.write_text(render_certificate(bundles[name]), encoding="utf-8")
        png = tmp_path / f"{name}.png"
        run_chromium(tmp_path, f"--screenshot={png}", "--window-size=1240,900", page.as_uri())
        found = zxingcpp.read_barcodes(Image.open(png))
        assert [code.text for code in found] == [qr_payload(bundles[name])]


NO_CJK_FONTS = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <selectfont><rejectfont><glob>/usr/share/fonts/opentype/noto/*</glob><glob>*CJK*</glob></rejectfont></selectfont>
</fontconfig>
"""


GLYPH_CELL = 48  # px: one character per cell of the grid page


def glyph_grid(face_css: str, characters: list[str]) -> str:
    """A page drawing each character in its own cell with the certificate's font stack."""
    cells = "".join(f'<div class="c">{escape(ch)}</div>' for ch in characters)
    return (f"<!DOCTYPE html><meta charset=utf-8><style>{face_css} body {{ margin: 0; }} "
            f".g {{ display: grid; grid-template-columns: repeat(20, {GLYPH_CELL}px); }} "
            f'.c {{ width: {GLYPH_CELL}px; height: {GLYPH_CELL}px; font: 32px/{GLYPH_CELL}px "Evledger CJK", sans-serif; '
            f"text-align: center; overflow: hidden; }}</style><div class=g>{cells}</div>")


@needs_chromium
def test_the_embedded_font_leaves_no_character_of_the_page_as_an_empty_box(bundles, tmp_path):
    """On a machine with no CJK font (fontconfig told to reject them), draw every non-ASCII
    character the certificate shows, one per cell, with the certificate's embedded font; the
    first cell is a character no font has, so it is the empty box (.notdef) this browser
    draws. No character may look like it. With the font removed, the Chinese must: that is
    what the check would catch."""
    from PIL import Image, ImageChops

    config = tmp_path / "fonts.conf"
    config.write_text(NO_CJK_FONTS)
    listed = subprocess.run(["fc-list"], capture_output=True, text=True, env={**os.environ, "FONTCONFIG_FILE": str(config)})
    assert "CJK" not in listed.stdout  # the browser below has no CJK font of its own

    html = render_certificate(bundles["hostile"])
    face = re.search(r"@font-face \{[^}]*\}", html).group()
    shown = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)  # what the page shows
    characters = sorted({ch for ch in re.sub(r"<[^>]*>", "", unescape(shown)) if ord(ch) > 0x7E and not ch.isspace()})
    assert len(characters) > 150 and "证" in characters
    grid = ["\U0010FFFD", *characters]  # a private-use character: the box
    boxes = {}
    for name, css in (("embedded", face), ("removed", "")):
        page = tmp_path / f"{name}.html"
        page.write_text(glyph_grid(css, grid), encoding="utf-8")
        png = tmp_path / f"{name}.png"
        rows = -(-len(grid) // 20)
        run_chromium(tmp_path, f"--screenshot={png}", f"--window-size={20 * GLYPH_CELL},{rows * GLYPH_CELL + 8}",
                     page.as_uri(), env={"FONTCONFIG_FILE": str(config)})
        image = Image.open(png).convert("L")
        cells = [image.crop(((n % 20) * GLYPH_CELL, (n // 20) * GLYPH_CELL, (n % 20 + 1) * GLYPH_CELL,
                             (n // 20 + 1) * GLYPH_CELL)) for n in range(len(grid))]
        boxes[name] = [ch for ch, cell in zip(characters, cells[1:])
                       if ImageChops.difference(cell, cells[0]).getbbox() is None]
    assert boxes["embedded"] == []
    cjk = [ch for ch in characters if "\u4e00" <= ch <= "\u9fff"]
    assert set(cjk) <= set(boxes["removed"])  # without the font every Chinese character is a box


def test_without_a_font_to_embed_the_certificate_still_renders_and_says_so(bundles, monkeypatch, caplog):
    from proof_api import cjk_font

    monkeypatch.setenv("EVLEDGER_CJK_FONT", "/nonexistent/font.ttc")
    cjk_font.woff2_subset.cache_clear()
    html = render_certificate(bundles["plain"])
    assert "@font-face" not in html and extract_bundle(html) == bundles["plain"]
    assert "certificate without an embedded CJK font: EVLEDGER_CJK_FONT names /nonexistent/font.ttc" in caplog.text


@needs_chromium
def test_the_pdf_certificate_has_its_text_and_font_and_renders(bundles, tmp_path):
    if shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None:
        if in_ci():
            pytest.fail("poppler-utils (pdftoppm, pdftotext) is missing: .ci/run installs it under CI=true")
        pytest.skip("poppler-utils is not installed (apt-get install poppler-utils)")
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(json.dumps(bundles["hostile"]), encoding="utf-8")
    pdf = tmp_path / "cert.pdf"
    # Printed where the browser has no CJK font: the Chinese below can only come from the
    # font the certificate embeds.
    config = tmp_path / "fonts.conf"
    config.write_text(NO_CJK_FONTS)
    done = subprocess.run([sys.executable, "-m", "proof_api.cli", "certificate", str(bundle_file), "--pdf", "-o", str(pdf)],
                          capture_output=True, text=True, timeout=180, env={**os.environ, "FONTCONFIG_FILE": str(config)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert pdf.read_bytes().startswith(b"%PDF-")
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "CJK" not in fonts  # no system CJK font was used (the web font is embedded as Type 3 glyphs)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for shown in ("数据保全证书", "存证编号", "ev-hostile", bundles["hostile"]["leaf"]["hash"]):
        assert shown in text, shown
    assert "在此验证" not in text  # the in-page verifier is not printed
    subprocess.run(["pdftoppm", "-r", "60", "-f", "1", "-l", "1", "-png", str(pdf), str(tmp_path / "page")], check=True)
    page = next(tmp_path.glob("page*.png"))
    from PIL import Image

    image = Image.open(page).convert("L")
    assert image.size[0] < image.size[1]  # portrait A4
    dark = sum(1 for value in image.get_flattened_data() if value < 128)
    assert dark > 2000, f"page 1 has only {dark} dark pixels: blank?"


def test_pdf_without_a_browser_is_a_clear_error(bundles, tmp_path):
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(json.dumps(bundles["plain"]), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "proof_api.cli", "certificate", str(bundle_file), "--pdf", "-o",
                           str(tmp_path / "c.pdf")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "EVLEDGER_CHROMIUM": "/nonexistent/chromium"})
    assert done.returncode == 1
    assert "printed by headless Chromium, and none was found" in done.stderr and "Traceback" not in done.stderr
