"""The data preservation certificate (数据保全证书): one `evledger-proof/1` bundle as a
human-readable, self-contained, print-friendly (A4) HTML page, with the bundle itself embedded.

    html = render_certificate(bundle)     # the page (no external resources: inline CSS, no scripts)
    bundle == extract_bundle(html)        # the embedded bundle, read back exactly

The page shows what the bundle *states*; it proves nothing by itself. Its weight is the embedded
bundle, which anyone can extract and check with `evledger verify` (docs/proof-bundle.md),
without trusting whoever issued the certificate. Rendering does not verify the bundle.

Safety: every value from the bundle is HTML-escaped where it is shown; in the embedded
`<script type="application/json">` every `<`, `>` and `&` is written as a JSON `\\u` escape, so no
value (`</script>`, `<!--`) can end the element early, and JSON.parse / json.loads give the exact
bundle back. Sealed fields are never shown, not even as ciphertext.

Also a command: `python -m proof_api.certificate render BUNDLE -o cert.html` and
`python -m proof_api.certificate extract cert.html -o bundle.json`.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime, timedelta, timezone
from html import escape
from html.parser import HTMLParser

from .bundle import BUNDLE_FORMAT
SCRIPT_ID = "evledger-proof"
BEIJING = timezone(timedelta(hours=8), "UTC+8")
MISSING = "—"


# --- values ------------------------------------------------------------------------------------


def _e(value) -> str:
    """Any value as escaped HTML text; JSON spelling for booleans and null."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return escape(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return escape(str(value), quote=True)


def _mono(value) -> str:
    return f'<span class="mono">{_e(value)}</span>'


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


def _times(moment: datetime | None) -> str:
    """UTC and Beijing time (UTC+8), one per line."""
    if moment is None:
        return MISSING
    return (f'<span class="mono">{escape(_fmt(moment, timezone.utc, "UTC"))}</span><br>'
            f'<span class="mono">{escape(_fmt(moment, BEIJING, "北京时间 UTC+8"))}</span>')


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


def _row(zh: str, en: str, value_html: str) -> str:
    return (f'<tr><th scope="row"><span class="zh">{zh}</span><span class="en">{en}</span></th>'
            f'<td>{value_html}</td></tr>')


def _table(rows: list[str]) -> str:
    return '<table class="fields">' + "".join(rows) + "</table>"


def _section(number: int, zh: str, en: str, body: str, extra_class: str = "") -> str:
    cls = f"section {extra_class}".strip()
    return (f'<section class="{cls}"><h2><span class="num">{number}</span>'
            f'<span class="zh">{zh}</span><span class="en">{en}</span></h2>{body}</section>')


def _attributes_html(attributes) -> str:
    if not isinstance(attributes, dict) or not attributes:
        return MISSING
    rows = "".join(f"<tr><td>{_mono(key)}</td><td>{_mono(val)}</td></tr>" for key, val in attributes.items())
    return f'<table class="inner">{rows}</table>'


def _signature_html(signature) -> str:
    if not isinstance(signature, dict):
        return _mono(signature)
    return (f'<table class="inner">'
            f'<tr><td>algorithm</td><td>{_mono(signature.get("algorithm"))}</td></tr>'
            f'<tr><td>signer_id</td><td>{_mono(signature.get("signer_id"))}</td></tr>'
            f'<tr><td>value</td><td>{_mono(signature.get("value"))}</td></tr></table>')


_KNOWN_RECORD_FIELDS = ("business_type", "business_id", "evidence_id", "occurred_at", "content_hash",
                        "signature", "attributes", "sealed")


def _record_section(bundle: dict, event: dict, record: dict) -> str:
    occurred = record.get("occurred_at")
    occurred_at = _parse_time(occurred)
    occurred_html = _mono(occurred) + '<span class="note"> (as stated by the producer / 按提交方所述)</span>'
    if occurred_at is not None:
        occurred_html += "<br>" + _times(occurred_at)
    received_html = _mono(event.get("received_at"))
    received_at = _parse_time(event.get("received_at"))
    if received_at is not None:
        received_html = _times(received_at)
    rows = [
        _row("业务类型", "Business type", _mono(record.get("business_type"))),
        _row("业务编号", "Business ID", _mono(record.get("business_id"))),
        _row("存证编号", "Evidence ID", _mono(record.get("evidence_id"))),
        _row("发生时间", "Occurred at", occurred_html),
        _row("接收时间", "Received at", received_html),
        _row("内容哈希 (SM3)", "Content hash (SM3)", f'<span class="mono hash">{_e(record.get("content_hash"))}</span>'),
    ]
    if "signature" in record:
        rows.append(_row("签名", "Signature", _signature_html(record["signature"])))
    if "attributes" in record:
        rows.append(_row("属性", "Attributes", _attributes_html(record["attributes"])))
    if "sealed" in record:
        rows.append(_row("保密字段", "Sealed fields",
                         '<span class="sealed">已加密封存（以密文形式承诺）<br>'
                         'sealed (encrypted, committed as ciphertext)</span>'))
    for key, val in record.items():  # nothing the leaf commits to is hidden, even fields unknown here
        if key not in _KNOWN_RECORD_FIELDS:
            rows.append(_row("其他字段", _e(key), _mono(val)))
    leaf = _dict(bundle.get("leaf"))
    alg = str(bundle.get("hash_alg") or "").upper() or MISSING
    rows += [
        _row("叶子序号", "Leaf index", _mono(leaf.get("index"))),
        _row(f"叶子哈希 ({_e(alg)})", f"Leaf hash ({_e(alg)})", f'<span class="mono hash">{_e(leaf.get("hash"))}</span>'),
    ]
    return _section(2, "存证记录", "The record", _table(rows))


def _checkpoint_section(bundle: dict) -> str:
    checkpoint = _dict(bundle.get("checkpoint"))
    inclusion = _dict(bundle.get("inclusion"))
    key_name, key_id = _key_parts(checkpoint.get("verifier_key"))
    path = inclusion.get("path") if isinstance(inclusion.get("path"), list) else []
    path_html = (f'{len(path)} 个哈希 / hashes'
                 + ('<span class="note">（单叶子树：叶子哈希即根哈希 / a one-leaf tree: the leaf hash is the root）</span>'
                    if not path and checkpoint.get("size") == 1 else "")
                 + (f'<ol class="path" start="0">{"".join(f"<li>{_mono(p)}</li>" for p in path)}</ol>' if path else ""))
    rows = [
        _row("树规模", "Tree size", _mono(checkpoint.get("size"))),
        _row("根哈希", "Root hash", f'<span class="mono hash">{_e(checkpoint.get("root"))}</span>'),
        _row("签名密钥", "Signing key", f"{_mono(key_name)}<br>key id {_mono(key_id)}"),
        _row("验证公钥", "Verifier key", f'<span class="mono small">{_e(checkpoint.get("verifier_key"))}</span>'),
        _row("包含证明路径", "Inclusion path", path_html),
    ]
    note = checkpoint.get("note")
    note_html = (f'<div class="label"><span class="zh">签名检查点</span><span class="en">Signed checkpoint note</span></div>'
                 f'<pre class="note-text">{_e(note)}</pre>')
    return _section(3, "签名检查点", "The checkpoint", _table(rows) + note_html)


def _anchor_section(bundle: dict) -> str:
    anchor = bundle.get("anchor")
    if not isinstance(anchor, dict):
        body = ('<div class="notice"><strong>未锚定 · Not anchored.</strong> '
                '此证明包所依据的检查点尚未锚定至区块链：其证明效力仅来自账本的签名。'
                '<br>The checkpoint this bundle is made against has not been anchored on a blockchain: '
                'it rests on the ledger\'s signature alone. Ask for a new bundle once an anchor covers the record.</div>')
        return _section(4, "区块链锚定", "The anchor", body)
    when = _unix_time(anchor.get("block_time"))
    rows = [
        _row("链 ID", "Chain ID", _mono(anchor.get("chain_id"))),
        _row("合约地址", "Contract", f'<span class="mono hash">{_e(anchor.get("contract"))}</span>'),
        _row("账本键", "Ledger key", f'<span class="mono hash">{_e(anchor.get("ledger_key"))}</span>'
             f'<span class="note"> = keccak256(“{_e(bundle.get("origin"))}”)</span>'),
        _row("交易哈希", "Transaction hash", f'<span class="mono hash">{_e(anchor.get("tx_hash"))}</span>'),
        _row("区块高度", "Block number", _mono(anchor.get("block_number"))),
        _row("区块哈希", "Block hash", f'<span class="mono hash">{_e(anchor.get("block_hash"))}</span>'),
        _row("出块时间", "Block time", _times(when) if when else _mono(anchor.get("block_time"))),
    ]
    return _section(4, "区块链锚定", "The anchor", _table(rows))


def _verify_section(bundle: dict) -> str:
    ledger = bundle.get("ledger")
    origin = bundle.get("origin")
    checkpoint = _dict(bundle.get("checkpoint"))
    anchor = bundle.get("anchor") if isinstance(bundle.get("anchor"), dict) else None
    size, root = checkpoint.get("size"), checkpoint.get("root")
    lines = [
        '<ol class="steps">',
        '<li><span class="zh">取出内嵌的证明包</span><span class="en">Extract the embedded proof bundle '
        f'(section 6) to <code>bundle.json</code>:</span><pre class="cmd">python3 -m proof_api.certificate extract '
        f'certificate.html -o bundle.json</pre></li>',
        '<li><span class="zh">离线验证：叶子 → 路径 → 根、检查点签名（<code>--key</code>：账本公布的验证公钥）、文件的 SM3 哈希，'
        '以及（使用 <code>--rpc</code> 时）链上锚定</span>'
        '<span class="en">Verify it offline: leaf → path → root, the checkpoint signature (<code>--key</code>: the '
        'verifier key the ledger published, not the one in the bundle), the file\'s SM3 hash '
        'and, with <code>--rpc</code>, the anchor on chain. Verdict ① (in the anchored tree, unaltered) or '
        '② (not in it, or altered); exit code 0 only for ①:</span>'
        '<pre class="cmd">evledger verify bundle.json --file &lt;file&gt;'
        + (' --rpc &lt;url&gt;' if anchor is not None else '') + ' --key &lt;published key&gt;</pre></li>',
    ]
    if anchor is not None:
        q = lambda value: shlex.quote(str(value))  # noqa: E731 (bundle values, shown as a shell would need them)
        origin_opt = "" if origin == f"evledger/{ledger}" else f" --origin {q(origin)}"
        anchor_cmd = (f"evledger anchor verify {q(ledger)} {q(size)} {q(root)} --rpc <url> "
                      f"--contract {q(anchor.get('contract'))}{origin_opt}")
        cast_cmd = (f'cast call {q(anchor.get("contract"))} "getAnchor(bytes32,uint64)(bytes32,uint64,uint64)" '
                    f'{q(anchor.get("ledger_key"))} {q(size)} --rpc-url <url>')
        lines.append(
            '<li><span class="zh">直接在链上核对锚定（无需本服务）</span><span class="en">Check the anchor straight on the '
            'chain, without this service: <code>VERIFIED</code> means the contract holds this root for this tree size:</span>'
            f'<pre class="cmd">{escape(anchor_cmd)}</pre>'
            '<span class="en">or with any client, e.g. Foundry\'s cast (the root it returns must equal the root above):</span>'
            f'<pre class="cmd">{escape(cast_cmd)}</pre></li>')
    lines.append('</ol><p class="small">格式说明 / The bundle format, field by field: <code>docs/proof-bundle.md</code> '
                 '(JSON Schema <code>docs/proof-bundle.schema.json</code>); anchoring: <code>docs/anchor.md</code>.</p>')
    return _section(5, "验证方法", "How to verify", "".join(lines))


def embed_json(bundle: dict) -> str:
    """The bundle as JSON that is safe inside a <script> element: `<`, `>`, `&` only as \\u escapes
    (JSON has them only inside strings, where the escapes mean the same characters)."""
    text = json.dumps(bundle, ensure_ascii=False, indent=1, allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_certificate(bundle: dict) -> str:
    """The certificate for one `evledger-proof/1` bundle, as a complete HTML document."""
    if not isinstance(bundle, dict):
        raise ValueError("a proof bundle is a JSON object")
    if bundle.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"not an {BUNDLE_FORMAT} bundle (format {bundle.get('format')!r})")
    event = _dict(bundle.get("record"))
    record = _dict(event.get("record"))
    leaf = _dict(bundle.get("leaf"))
    checkpoint = _dict(bundle.get("checkpoint"))
    anchor = bundle.get("anchor") if isinstance(bundle.get("anchor"), dict) else None

    ledger_rows = [
        _row("账本", "Ledger", _mono(bundle.get("ledger"))),
        _row("检查点来源", "Checkpoint origin", _mono(bundle.get("origin"))),
        _row("哈希算法", "Hash algorithm", _mono(str(bundle.get("hash_alg") or "").upper() or None)),
        _row("证明包格式", "Bundle format", _mono(bundle.get("format"))),
        _row("出具时间", "Issued at", _times(_parse_time(bundle.get("issued_at"))) if _parse_time(bundle.get("issued_at"))
             else _mono(bundle.get("issued_at"))),
    ]

    received = _parse_time(event.get("received_at"))
    received_zh = escape(_fmt(received, BEIJING, "（北京时间）")) if received else _e(event.get("received_at"))
    received_en = escape(_fmt(received, timezone.utc, "UTC")) if received else _e(event.get("received_at"))
    ledger_name, index, size = _e(bundle.get("ledger")), _e(leaf.get("index")), _e(checkpoint.get("size"))
    statement_zh = (f"下列电子数据记录于 {received_zh} 由账本 “{ledger_name}” 接收，作为第 {index} 号叶子纳入其默克尔树，"
                    f"并包含于树规模为 {size} 的签名检查点中")
    statement_en = (f"The electronic record below was received by ledger “{ledger_name}” at {received_en}, "
                    f"committed as leaf {index} of its Merkle tree, and included in the signed checkpoint "
                    f"of tree size {size}")
    when = _unix_time(anchor.get("block_time")) if anchor else None
    if anchor is not None:
        block_zh = escape(_fmt(when, BEIJING, "（北京时间）")) if when else _e(anchor.get("block_time"))
        block_en = escape(_fmt(when, timezone.utc, "UTC")) if when else _e(anchor.get("block_time"))
        statement_zh += (f"；该检查点已于 {block_zh} 锚定至区块链（链 ID {_e(anchor.get('chain_id'))}，"
                         f"区块高度 {_e(anchor.get('block_number'))}）。")
        statement_en += (f", which was anchored on chain {_e(anchor.get('chain_id'))} in block "
                         f"{_e(anchor.get('block_number'))} at {block_en}.")
    else:
        statement_zh += "；该检查点尚未锚定至区块链。"
        statement_en += "; that checkpoint is not anchored on a blockchain yet."

    embedded_note = (
        '<p><span class="zh">完整的证明包以 JSON 形式内嵌于本文件的 '
        '<code>&lt;script type="application/json" id="evledger-proof"&gt;</code> 元素中，可取出后独立验证（见第 5 节）。'
        '本证书是证明包的可读呈现，其证明效力在于证明包本身，无需信任出具方。</span>'
        '<span class="en">The complete proof bundle is embedded in this file as JSON, in the '
        '<code>&lt;script type="application/json" id="evledger-proof"&gt;</code> element. Extract it '
        '(section 5, or in a browser console: <code>JSON.parse(document.getElementById("evledger-proof").textContent)</code>) '
        'and verify it independently. This certificate is a readable rendering of that bundle: its weight is the '
        'bundle, which can be checked without trusting the issuer.</span></p>')

    title_ref = f"{_e(bundle.get('ledger'))} · #{index} · {size}"
    body = "".join([
        '<main class="certificate">',
        '<header><div class="title-zh">数据保全证书</div><div class="title-en">Data Preservation Certificate</div>',
        f'<div class="ref">{title_ref}</div></header>',
        f'<div class="statement"><p class="zh">{statement_zh}</p><p class="en">{statement_en}</p></div>',
        _section(1, "账本与来源", "Ledger and origin", _table(ledger_rows)),
        _record_section(bundle, event, record),
        _checkpoint_section(bundle),
        _anchor_section(bundle),
        _verify_section(bundle),
        _section(6, "内嵌证明包", "Embedded proof bundle", embedded_note),
        '<footer>evledger · evledger-proof/1</footer>',
        '</main>',
    ])
    title = f"数据保全证书 Data Preservation Certificate · {_e(bundle.get('ledger'))} #{index}"
    return ("<!DOCTYPE html>\n"
            '<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n"
            f'<script type="application/json" id="{SCRIPT_ID}">\n{embed_json(bundle)}\n</script>\n'
            "</body>\n</html>\n")


# --- reading it back ---------------------------------------------------------------------------


class _ScriptFinder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=False)
        self._inside = False
        self._chunks: list[str] = []
        self.found = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("id") == SCRIPT_ID and attrs.get("type") == "application/json":
            self._inside = True
            self.found += 1

    def handle_endtag(self, tag):
        if tag == "script":
            self._inside = False

    def handle_data(self, data):
        if self._inside and self.found == 1:
            self._chunks.append(data)

    @property
    def text(self) -> str:
        return "".join(self._chunks)


def extract_bundle(html_text: str) -> dict:
    """The proof bundle embedded in a certificate."""
    finder = _ScriptFinder()
    finder.feed(html_text)
    finder.close()
    if finder.found != 1:
        raise ValueError(f"expected one <script type=\"application/json\" id=\"{SCRIPT_ID}\"> element, "
                         f"found {finder.found}")
    from .verify import load_bundle  # read as every verifier reads a bundle: one text, one bundle

    bundle = load_bundle(finder.text)
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"the embedded JSON is not an {BUNDLE_FORMAT} bundle")
    return bundle


# --- style -------------------------------------------------------------------------------------

_CSS = """
@page { size: A4; margin: 13mm 14mm 15mm 14mm;
  @bottom-center { content: "数据保全证书 · Data Preservation Certificate · " counter(page) " / " counter(pages);
    font-family: "Noto Sans CJK SC", sans-serif; font-size: 7.5pt; color: #888; } }
* { box-sizing: border-box; }
html { background: #eceae4; }
body { margin: 0; padding: 12mm 0; color: #1d1d1f;
  font-family: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "Hiragino Sans GB",
    "Helvetica Neue", Arial, sans-serif;
  font-size: 10pt; line-height: 1.45; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.certificate { width: 186mm; margin: 0 auto; background: #fff; padding: 12mm 12mm 8mm;
  border: 1.2mm double #8a6d3b; box-shadow: 0 1mm 4mm rgba(0,0,0,.15); }
header { text-align: center; border-bottom: 0.4mm solid #8a6d3b; padding-bottom: 4mm; margin-bottom: 4mm; }
.title-zh { font-family: "Noto Serif CJK SC", "Source Han Serif SC", "Songti SC", SimSun, serif;
  font-size: 26pt; font-weight: 700; letter-spacing: 0.5em; margin-right: -0.5em; color: #5a3e12; }
.title-en { font-family: Georgia, "Times New Roman", serif; font-size: 14pt; letter-spacing: 0.12em;
  text-transform: uppercase; color: #5a3e12; margin-top: 1mm; }
.ref { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: 8.5pt; color: #666; margin-top: 2mm; }
.statement { background: #faf6ec; border-left: 1mm solid #8a6d3b; padding: 2.5mm 4mm; margin: 0 0 4mm; }
.statement p { margin: 0.8mm 0; }
.statement p.en { color: #444; font-size: 9pt; }
section { margin: 0 0 4mm; }
h2 { font-size: 11.5pt; margin: 0 0 1.5mm; padding-bottom: 1mm; border-bottom: 0.25mm solid #c9b68f;
  color: #5a3e12; break-after: avoid; page-break-after: avoid; }
h2 .num { display: inline-block; min-width: 6mm; color: #8a6d3b; }
h2 .en, th .en, .label .en { font-weight: 400; color: #555; margin-left: 2mm; }
table.fields { width: 100%; border-collapse: collapse; table-layout: fixed; }
table.fields > tbody > tr > th, table.fields > tr > th { width: 38mm; text-align: left; vertical-align: top;
  font-weight: 600; padding: 1mm 2mm 1mm 0; }
table.fields th .en { display: block; margin-left: 0; font-size: 8pt; }
table.fields td { vertical-align: top; padding: 1mm 0; border-bottom: 0.15mm solid #eee; overflow-wrap: anywhere; }
table.fields tr { break-inside: avoid; page-break-inside: avoid; }
table.inner { border-collapse: collapse; }
table.inner td { padding: 0 3mm 0.4mm 0; vertical-align: top; border: 0; overflow-wrap: anywhere; }
table.inner td:first-child { color: #555; white-space: nowrap; }
.mono, code, pre { font-family: "DejaVu Sans Mono", "Liberation Mono", Consolas, Menlo, monospace; font-size: 8.6pt; }
.hash, .small { overflow-wrap: anywhere; }
.hash { font-size: 8.2pt; }
.small { font-size: 8pt; }
.note { color: #666; font-size: 8.5pt; }
.sealed { color: #7a4a00; font-style: italic; }
ol.path { margin: 0.5mm 0 0; padding-left: 7mm; font-size: 8pt; }
ol.path li { overflow-wrap: anywhere; }
ol.path .mono { font-size: 7.8pt; }
.label { font-weight: 600; margin: 2mm 0 1mm; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }
pre.note-text { background: #f6f6f4; border: 0.2mm solid #ddd; padding: 2mm 3mm; font-size: 8.2pt;
  break-inside: avoid; page-break-inside: avoid; }
pre.cmd { background: #1f2328; color: #f0f0f0; padding: 1.6mm 3mm; margin: 1mm 0 2mm; border-radius: 1mm;
  font-size: 8pt; break-inside: avoid; page-break-inside: avoid; }
ol.steps { padding-left: 5mm; margin: 1mm 0; }
ol.steps li { margin-bottom: 1mm; }
ol.steps .zh, ol.steps .en, section p .zh, section p .en { display: block; }
ol.steps .en, section p .en { color: #444; font-size: 9pt; }
.notice { border: 0.4mm solid #b45309; background: #fff7ed; color: #7c2d12; padding: 2.5mm 4mm; }
section p { margin: 1mm 0; }
footer { text-align: center; color: #999; font-size: 7.5pt; margin-top: 5mm; border-top: 0.2mm solid #eee; padding-top: 2mm; }
@media print {
  html, body { background: #fff; padding: 0; }
  body { font-size: 9.5pt; line-height: 1.3; }
  header { padding-bottom: 3mm; margin-bottom: 3mm; }
  .title-zh { font-size: 22pt; }
  section { margin-bottom: 3mm; }
  table.fields th .en { font-size: 7.5pt; line-height: 1.15; }
  table.fields td, table.fields > tbody > tr > th, table.fields > tr > th { padding-top: 0.6mm; padding-bottom: 0.6mm; }
  footer { display: none; }
  .certificate { width: auto; margin: 0; box-shadow: none; border: 0; padding: 0; }
}
"""


# --- the command -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m proof_api.certificate",
                                     description="render a proof bundle as a certificate, or extract it back")
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="BUNDLE (a JSON file, or - for stdin) -> certificate HTML")
    render.add_argument("bundle")
    render.add_argument("-o", "--output", default="-", help="the HTML file (default: stdout)")
    extract = sub.add_parser("extract", help="certificate HTML -> the embedded bundle as JSON")
    extract.add_argument("certificate")
    extract.add_argument("-o", "--output", default="-", help="the JSON file (default: stdout)")
    args = parser.parse_args(argv)

    def read(path: str) -> str:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()

    def read_bundle(path: str):
        from .verify import load_bundle, read_bundle_file  # as every verifier reads a bundle

        try:
            return load_bundle(read_bundle_file(path))
        except ValueError as exc:  # StrictJSONError
            raise ValueError(f"{path}: the bundle cannot be read: {exc}") from None

    def write(path: str, text: str) -> None:
        if path == "-":
            sys.stdout.write(text)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)

    try:
        if args.command == "render":
            write(args.output, render_certificate(read_bundle(args.bundle)))
        else:
            write(args.output, json.dumps(extract_bundle(read(args.certificate)), ensure_ascii=False, indent=1) + "\n")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
