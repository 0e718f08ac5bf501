"""How every verifier entry point reads a bundle's text: evledger_verify/strict_json.py's
`loads_strict`, through `load_bundle` (evledger_verify/verify.py).

One text must be one bundle everywhere: `evledger verify` (in process and as a command),
`evledger certificate` (and its --extract), and the `/v1/verify` route, which
reads its whole request body with `loads_strict` and hands the "bundle" member to
`verify_bundle`. Each hostile text here is a real bundle changed one way (a duplicated key whose
last value is the genuine one, so a last-key-wins reader sees a good bundle; a lone surrogate;
bad UTF-8; NaN; a number that is not a plain integer; nesting 100,000 deep; one byte over the
size limit), and each must give the same refusal on every entry point: verdict ② with the
format check naming what was wrong, never a traceback and never a crash, not even where web3
has raised the recursion limit to 100,000 (where the json module's C scanner would overflow
the C stack).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from anchor.chain import Web3Chain
from anchor.worker import AnchorSettings, AnchorWorker
from ingest.ledger import LedgerService
from ingest.sequencer import SequencerSettings
from proof_api.bundle import build_bundle
from proof_api.certificate import SCRIPT_ID, extract_bundle, render_certificate
from proof_api.cli import main as cli_main
from evledger_verify.strict_json import StrictJSONError, loads_strict
from proof_api.bodies import MAX_VERIFY_BODY_BYTES
from evledger_verify.verify import (MAX_BUNDLE_BYTES, MAX_BUNDLE_DEPTH, format_report, load_bundle, run,
                                    unreadable_report, verify_bundle)
from tests.sample_records import rec

ROOT = Path(__file__).resolve().parent.parent
# What the /v1/verify route reads: {"bundle": ..., "content_hash": ..., "verifier_keys": [...]},
# one level deeper than a bundle and a little larger.
REQUEST_LIMITS = {"max_bytes": MAX_VERIFY_BODY_BYTES, "max_depth": MAX_BUNDLE_DEPTH + 1}  # what /v1/verify reads


def evledger_command() -> list[str]:
    installed = Path(sys.executable).with_name("evledger")
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "proof_api.cli"]


@pytest.fixture(scope="module")
def good_text(tmp_path_factory) -> bytes:
    """A real anchored bundle (record 2 of 5 of ledger acme) as compact JSON text."""
    service = LedgerService(tmp_path_factory.mktemp("parsing") / "data",
                            settings=SequencerSettings(batch_max_delay=0.05))
    try:
        ledger = service.create_ledger("acme")
        ledger.submit([rec(i, evidence_id=f"e{i}") for i in range(5)])
        assert ledger.wait_for_checkpoint(5, timeout=15) is not None
        worker = AnchorWorker(service, Web3Chain.in_process(), AnchorSettings(min_interval=0, poll_interval=0.05))
        worker.anchor_now("acme")
        assert worker.wait_confirmed("acme", 5, timeout=30) is not None
        text = json.dumps(build_bundle(ledger, 2), separators=(",", ":")).encode()
    finally:
        service.close()
    assert verify_bundle(load_bundle(text)).verdict == 1
    return text


def changed(text: bytes, old: bytes, new: bytes) -> bytes:
    """`old` replaced where it first occurs (top level before `record`: the bundle's key order)."""
    assert old in text, old
    return text.replace(old, new, 1)


def deeply_nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def hostile_texts(good: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (text, the refusal's message, as load_bundle gives it)."""
    bundle = json.loads(good)
    index, block_time = bundle["leaf"]["index"], bundle["anchor"]["block_time"]
    at = good.index(b'"origin":"') + len(b'"origin":"')  # the byte where the origin's value starts
    return {
        # The genuine value comes last: orjson and plain json.loads keep it and see a good bundle.
        "ledger twice": (changed(good, b'"ledger":"acme"', b'"ledger":"evil","ledger":"acme"'),
                         "duplicate key 'ledger' in object at $"),
        "leaf.index twice": (changed(good, b'"index":%d' % index, b'"index":4,"index":%d' % index),
                             "duplicate key 'index' in object at $.leaf"),
        "lone surrogate in a value": (changed(good, b'"origin":"evledger/acme"', b'"origin":"evledger/\\ud800acme"'),
                                      "lone surrogate \\ud800 in a string at $.origin"),
        "lone surrogate in a key": (changed(good, b'"anchor":{', b'"anchor":{"\\udc00":1,'),
                                    "lone surrogate \\udc00 in the key '\\udc00' of the object at $.anchor"),
        "invalid UTF-8": (good[:at] + b"\xff" + good[at:], f"invalid UTF-8 at byte {at} (ff: invalid start byte)"),
        "overlong UTF-8 (a / in two bytes)": (changed(good, b'"origin":"evledger/', b'"origin":"evledger\xc0\xaf'),
                                              f"invalid UTF-8 at byte {at + 8} (c0: invalid start byte)"),
        "overlong UTF-8 (three bytes)": (changed(good, b'"origin":"evledger/', b'"origin":"evledger\xe0\x80\xaf'),
                                         f"invalid UTF-8 at byte {at + 8} (e0: invalid continuation byte)"),
        "an encoded surrogate": (changed(good, b'"origin":"evledger/', b'"origin":"evledger\xed\xa0\x80'),
                                 f"invalid UTF-8 at byte {at + 8} (ed: invalid continuation byte)"),
        "NaN": (changed(good, b'"block_time":%d' % block_time, b'"block_time":NaN'),
                "NaN is not JSON at $.anchor.block_time"),
        "Infinity": (changed(good, b'"block_time":%d' % block_time, b'"block_time":Infinity'),
                     "Infinity is not JSON at $.anchor.block_time"),
        "1e3 for an integer": (changed(good, b'"block_time":%d' % block_time, b'"block_time":1e3'),
                               "number 1e3 is not a plain integer (no fraction, no exponent) at $.anchor.block_time"),
        "2e0 for 2": (changed(good, b'"index":%d' % index, b'"index":2e0'),
                      "number 2e0 is not a plain integer (no fraction, no exponent) at $.leaf.index"),
        "1.0 for an integer": (changed(good, b'"index":%d' % index, b'"index":2.0'),
                               "number 2.0 is not a plain integer (no fraction, no exponent) at $.leaf.index"),
        "-0": (changed(good, b'"block_time":%d' % block_time, b'"block_time":-0'),
               "number -0 is not a plain integer (write 0) at $.anchor.block_time"),
        "nested 100,000 deep": (deeply_nested(100_000),
                                f"nesting deeper than {MAX_BUNDLE_DEPTH} levels (at character {MAX_BUNDLE_DEPTH})"),
        "nested deep inside the record": (changed(good, b'"record":{', b'"record":{"x":' + deeply_nested(100_000) + b','),
                                          f"nesting deeper than {MAX_BUNDLE_DEPTH} levels"),
        "one byte over the size limit": (good[:-1] + b" " * (MAX_BUNDLE_BYTES - len(good) + 1) + b"}",
                                         f"the text is {MAX_BUNDLE_BYTES + 1} bytes, over the limit of {MAX_BUNDLE_BYTES}"),
        "not JSON at all": (good[:-1], "not JSON: Expecting ',' delimiter"),
    }


# The cases' names, from a stand-in text (the real bundle comes from a fixture, after collection).
HOSTILE = list(hostile_texts(b'{"ledger":"acme","origin":"evledger/acme","leaf":{"index":2},'
                             b'"anchor":{"block_time":7},"record":{}}'))


def request_body(bundle_text: bytes) -> bytes:
    return b'{"content_hash":null,"bundle":' + bundle_text + b"}"


# --- loads_strict on its own -------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    (b'{"a":[1,-2,true,false,null,"x"]}', {"a": [1, -2, True, False, None, "x"]}),
    (b'"\\ud83d\\ude00"', "\U0001F600"),  # an escaped surrogate pair is one character
    ("\u4e2d\u6587".encode(), None),  # not JSON: a bare word
    (b'{"a":"]]]}}}[[[{{{\\"["}', {"a": ']]]}}}[[[{{{"['}),  # brackets in strings do not nest
    (b" \t\r\n[] ", []),
])
def test_loads_strict_reads_plain_json(text, value):
    if value is None:
        with pytest.raises(StrictJSONError, match="^not JSON: "):
            loads_strict(text, max_bytes=100, max_depth=4)
    else:
        assert loads_strict(text, max_bytes=100, max_depth=4) == value
        assert loads_strict(text.decode(), max_bytes=100, max_depth=4) == value


def test_loads_strict_limits_are_inclusive():
    assert loads_strict(deeply_nested(4), max_bytes=8, max_depth=4) == [[[[]]]]
    with pytest.raises(StrictJSONError, match=r"^nesting deeper than 3 levels \(at character 3\)$"):
        loads_strict(deeply_nested(4), max_bytes=8, max_depth=3)
    with pytest.raises(StrictJSONError, match="^the text is 8 bytes, over the limit of 7$"):
        loads_strict(deeply_nested(4), max_bytes=7, max_depth=4)
    with pytest.raises(StrictJSONError, match="^the text is 5 bytes, over the limit of 4$"):
        loads_strict('"\u4e2d"', max_bytes=4, max_depth=4)  # 3 characters, 5 bytes of UTF-8


def test_loads_strict_refuses_what_utf8_cannot_hold_in_a_str():
    with pytest.raises(StrictJSONError, match=r"^lone surrogate \\ud800 at character 2$"):
        loads_strict('["\ud800"]', max_bytes=100, max_depth=4)


def test_loads_strict_paths_name_where():
    with pytest.raises(StrictJSONError) as refused:
        loads_strict(b'{"a b":{"":[0,{"c":[1,0.5]}]}}', max_bytes=100, max_depth=8)
    assert str(refused.value) == 'number 0.5 is not a plain integer (no fraction, no exponent) at $["a b"][""][1].c[1]'
    assert isinstance(refused.value, ValueError)


def test_loads_strict_refuses_a_huge_integer_without_raising_anything_else():
    with pytest.raises(StrictJSONError, match="^integer of 5000 digits is too long at \\$$"):
        loads_strict(b"9" * 5000, max_bytes=10_000, max_depth=4)


def test_loads_strict_needs_only_the_standard_library():
    """The offline verifier becomes a distribution of its own: no orjson, numpy or web3 here.
    -S: no site-packages at all; the module is loaded from its file, without the package."""
    script = ("import importlib.util, sys\n"
              "spec = importlib.util.spec_from_file_location('strict_json', sys.argv[1])\n"
              "module = importlib.util.module_from_spec(spec)\n"
              "spec.loader.exec_module(module)\n"
              "print(module.loads_strict(b'{\"a\":[1]}', max_bytes=16, max_depth=2))\n")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script, str(ROOT / "verifier" / "evledger_verify" / "strict_json.py")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "{'a': [1]}\n", done.stderr


# --- a good bundle reads the same everywhere ----------------------------------------------------


def test_a_good_bundle_reads_the_same_on_every_entry_point(good_text, tmp_path, capsys):
    path = tmp_path / "bundle.json"
    path.write_bytes(good_text)
    assert run(str(path)) == 0
    printed = capsys.readouterr().out
    assert "verdict ①" in printed
    # The route: the whole body read strictly, then the "bundle" member to verify_bundle.
    body = loads_strict(request_body(good_text), **REQUEST_LIMITS)
    assert body["bundle"] == load_bundle(good_text)
    assert format_report(verify_bundle(body["bundle"])) + "\n" == printed
    # At the size limit exactly (JSON may carry whitespace) it is still read.
    padded = good_text[:-1] + b" " * (MAX_BUNDLE_BYTES - len(good_text)) + b"}"
    assert len(padded) == MAX_BUNDLE_BYTES
    path.write_bytes(padded)
    assert run(str(path)) == 0
    assert capsys.readouterr().out == printed


# --- a refused text gives the same refusal everywhere ------------------------------------------


@pytest.mark.parametrize("name", HOSTILE)
def test_a_refused_bundle_gives_2_with_the_reason_on_every_entry_point(name, good_text, tmp_path, capsys):
    text, problem = hostile_texts(good_text)[name]
    with pytest.raises(StrictJSONError) as refused:
        load_bundle(text)
    assert str(refused.value).startswith(problem)
    reason = str(refused.value)

    # `evledger verify`, in process: the format check fails with the reason, nothing else is
    # checked, verdict ②, exit 1.
    path = tmp_path / "bundle.json"
    path.write_bytes(text)
    assert run(str(path)) == 1
    out = capsys.readouterr().out
    assert out == format_report(unreadable_report(refused.value)) + "\n"
    lines = out.splitlines()
    assert lines[0] == f"✘ format: the bundle cannot be read: {reason}"
    assert all(line.endswith("not checked: the bundle is malformed") for line in lines[1:-1])
    assert lines[-1].startswith("verdict ②:") and lines[-1].endswith("(failed: format)")

    # `evledger certificate` refuses it with the same reason, writing nothing, to a file or to stdout.
    html = tmp_path / "certificate.html"
    assert cli_main(["certificate", str(path), "-o", str(html)]) == 1
    assert f"evledger certificate: error: {path}: the bundle cannot be read: {reason}" in capsys.readouterr().err
    assert cli_main(["certificate", str(path), "-o", "-"]) == 1
    captured = capsys.readouterr()
    assert f"error: {path}: the bundle cannot be read: {reason}" in captured.err and captured.out == ""
    assert not html.exists()

    # The route reads the whole body strictly: the same reason, where the bundle sits in it.
    if name == "one byte over the size limit":
        return  # over the route's body limit too: a 413 before any reading (tests/test_api_hostile.py)
    with pytest.raises(StrictJSONError) as in_body:
        loads_strict(request_body(text), **REQUEST_LIMITS)
    seen = str(in_body.value)
    if "UTF-8" in name or name == "an encoded surrogate":
        byte = int(reason.split()[4])
        assert seen == reason.replace(f"byte {byte}", f"byte {byte + len(request_body(b'')) - 1}")
    elif name.startswith("nested"):
        assert seen.startswith(f"nesting deeper than {REQUEST_LIMITS['max_depth']} levels")
    elif name == "not JSON at all":
        assert seen.startswith("not JSON: ")
    else:
        assert seen == reason.replace(" at $", " at $.bundle", 1)


def test_a_last_key_wins_reader_would_have_passed_the_duplicated_keys(good_text):
    """Why the refusal matters: read the way orjson (or plain json.loads) reads it, each of these
    texts is a good bundle, so a verifier built on such a reader says ①."""
    for name in ("ledger twice", "leaf.index twice"):
        text, _ = hostile_texts(good_text)[name]
        assert verify_bundle(orjson.loads(text)).verdict == 1, name
        assert verify_bundle(json.loads(text)).verdict == 1, name


def test_the_command_refuses_a_bundle_nested_100000_deep_without_a_traceback(tmp_path):
    path = tmp_path / "deep.json"
    path.write_bytes(deeply_nested(100_000))
    done = subprocess.run([*evledger_command(), "verify", str(path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Error" not in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"✘ format: the bundle cannot be read: nesting deeper than {MAX_BUNDLE_DEPTH} levels " \
                       f"(at character {MAX_BUNDLE_DEPTH})"
    assert lines[-1].startswith("verdict ②:") and lines[-1].endswith("(failed: format)")


def test_no_crash_where_web3_raised_the_recursion_limit(tmp_path):
    """web3 (py_ecc) sets the recursion limit to 100,000: there the json module's C scanner
    overflows the C stack on 100,000 brackets and the process dies (SIGSEGV) instead of raising.
    The depth is counted before the parser runs, so the verifier answers all the same."""
    path = tmp_path / "deep.json"
    prefix = b'{"format":"evledger-proof/1","record":'
    path.write_bytes(prefix + b'{"x":' * 100_000 + b"1" + b"}" * 100_001)
    too_deep_at = len(prefix) + len(b'{"x":') * (MAX_BUNDLE_DEPTH - 1)  # where the bracket one level too deep opens
    script = ("import sys, web3\n"
              "assert sys.getrecursionlimit() >= 100_000, sys.getrecursionlimit()\n"
              "from proof_api.cli import main\n"
              "code = main(['verify', sys.argv[1]])\n"
              "print('certificate exit', main(['certificate', sys.argv[1], '-o', sys.argv[1] + '.html']))\n"
              "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])  # not -11 (SIGSEGV)
    assert "Traceback" not in done.stderr
    assert done.stdout.splitlines()[0] == (f"✘ format: the bundle cannot be read: nesting deeper than "
                                           f"{MAX_BUNDLE_DEPTH} levels (at character {too_deep_at})")
    assert "verdict ②:" in done.stdout and "certificate exit 1" in done.stdout
    assert "the bundle cannot be read: nesting deeper than" in done.stderr


def test_the_command_reads_stdin_with_the_same_limit(good_text):
    oversized = good_text[:-1] + b" " * MAX_BUNDLE_BYTES + b"}"
    done = subprocess.run([*evledger_command(), "verify", "-"], input=oversized, capture_output=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    # Only one byte past the limit is read: enough to know the text is too long.
    assert done.stdout.decode().splitlines()[0] == (f"✘ format: the bundle cannot be read: the text is "
                                                    f"{MAX_BUNDLE_BYTES + 1} bytes, over the limit of {MAX_BUNDLE_BYTES}")


def test_a_certificate_with_a_duplicated_key_inside_is_refused(good_text):
    html = render_certificate(load_bundle(good_text))
    assert extract_bundle(html) == load_bundle(good_text)
    start = html.index(f'id="{SCRIPT_ID}">')
    tampered = html[:start] + html[start:].replace('"ledger": "acme"', '"ledger": "evil", "ledger": "acme"', 1)
    with pytest.raises(StrictJSONError, match="^duplicate key 'ledger' in object at \\$$"):
        extract_bundle(tampered)


@pytest.mark.parametrize("field", [b'"chain_id":', b'"block_number":', b'"index":'])
def test_an_integer_no_double_or_uint64_holds_is_refused_offline_as_over_http(good_text, field):
    """10**400 in a bundle: orjson (the HTTP body parser) cannot read it, so the offline
    verifier must not give 1 for it either: every count in a bundle is below 2**64."""
    import orjson

    from evledger_verify.verify import load_bundle, verify_bundle

    assert verify_bundle(load_bundle(good_text)).verdict == 1
    start = good_text.index(field) + len(field)
    end = start + len(re.match(rb"[0-9]+", good_text[start:])[0])
    for huge in (b"1" + b"0" * 400, str(2**64).encode()):
        text = good_text[:start] + huge + good_text[end:]
        report = verify_bundle(load_bundle(text))
        assert report.verdict == 2 and report.checks[0].name == "format" and "below 2**64" in report.checks[0].detail
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(good_text[:start] + b"1" + b"0" * 400 + good_text[end:])


def test_the_certificate_command_renders_and_extracts_the_same_bundle(good_text, tmp_path, capsys):
    bundle_path, html, back = tmp_path / "bundle.json", tmp_path / "certificate.html", tmp_path / "back.json"
    bundle_path.write_bytes(good_text)
    assert cli_main(["certificate", str(bundle_path), "-o", str(html)]) == 0
    assert cli_main(["certificate", "--extract", str(html), "-o", str(back)]) == 0
    assert load_bundle(back.read_bytes()) == load_bundle(good_text)
    capsys.readouterr()
    assert cli_main(["certificate", "--extract", str(bundle_path), "-o", "-"]) == 1  # a bundle is not a certificate
    captured = capsys.readouterr()
    assert "evledger certificate: error: expected one <script" in captured.err and captured.out == ""


def test_the_extract_command_a_certificate_prints_works_and_so_does_the_older_spelling(good_text, tmp_path):
    """Certificates are kept for years: the command each one prints must run, the one printed by
    certificates issued before `evledger certificate --extract` too."""
    html = render_certificate(load_bundle(good_text))
    assert "evledger certificate --extract certificate.html -o bundle.json" in html
    (tmp_path / "certificate.html").write_text(html, encoding="utf-8")
    for command in ([*evledger_command(), "certificate", "--extract", "certificate.html", "-o", "bundle.json"],
                    [sys.executable, "-m", "proof_api.certificate", "extract", "certificate.html", "-o", "old.json"]):
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert load_bundle((tmp_path / "bundle.json").read_bytes()) == load_bundle((tmp_path / "old.json").read_bytes()) \
        == load_bundle(good_text)


def test_extracting_from_hostile_html_is_a_linear_scan():
    """Floods that made html.parser take quadratic time (200 KB of "<!--": 22 s) are refused at
    once: run in a child with a deadline, so a regression fails instead of hanging the suite."""
    script = ("from proof_api.certificate import extract_bundle\n"
              "for junk in ('<!--', '<![CDATA[', '<!', '<?', '<a ', '<script', '<script a=\"'):\n"
              "    try:\n"
              "        extract_bundle(junk * (1_000_000 // len(junk)))\n"
              "    except ValueError as exc:\n"
              "        assert 'found 0' in str(exc), exc\n"
              "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]


def test_the_embedded_bundle_is_found_as_a_browser_finds_it(good_text):
    """The first of two equal attributes counts; a script inside a comment is no element; tag and
    attribute names in any case, values quoted or not, entities decoded."""
    html = render_certificate(load_bundle(good_text))
    start = html.index(f'<script type="application/json" id="{SCRIPT_ID}">')
    end = html.index("</script>", start) + len("</script>")
    element = html[start:end]
    text = element[element.index(">") + 1:-len("</script>")]
    assert extract_bundle(html) == load_bundle(good_text)
    decoy = f'<script id="other" type="application/json" id="{SCRIPT_ID}">{text}</script>'
    commented = f"<!-- {element} -->"
    with pytest.raises(ValueError, match="found 0"):
        extract_bundle(html.replace(element, decoy))
    with pytest.raises(ValueError, match="found 0"):
        extract_bundle(html.replace(element, commented))
    spelled = f"<SCRIPT TYPE=application/json ID='evledger&#45;proof' >{text}</Script >"
    assert extract_bundle(html.replace(element, spelled)) == load_bundle(good_text)
