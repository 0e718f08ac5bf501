"""evledger_common/stopping.py: stop signals while `serve` and `stream worker` close their ledgers. Each
case runs in a subprocess, since it changes the process's signal handlers for good."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)


PRELUDE = """
import asyncio, os, signal, time
from evledger_common.stopping import hold_while_closing, ignore_for_exit
def kill(sig):
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # Python runs the handler between bytecodes, soon after delivery
"""


def test_repeated_sigterm_is_noted_and_a_second_sigint_exits_at_once():
    result = run(PRELUDE + """
hold_while_closing()
kill(signal.SIGTERM); kill(signal.SIGTERM); kill(signal.SIGINT)
print("still closing", flush=True)
kill(signal.SIGINT)
print("not reached", flush=True)
""")
    assert result.returncode == 130, result.stderr
    assert result.stdout == "still closing\n"
    assert result.stderr.count("SIGTERM received while stopping") == 2
    assert "press Ctrl-C again to exit at once" in result.stderr
    assert "SIGINT again: exiting without waiting for the close" in result.stderr


def test_closing_the_event_loop_leaves_the_handlers_and_the_exit_ignores_late_signals():
    # asyncio's loop.close() puts the default handler back for the signals it handles: a
    # SIGTERM after it would kill the process, unless hold_while_closing took them off it.
    result = run(PRELUDE + """
loop = asyncio.new_event_loop()
loop.add_signal_handler(signal.SIGTERM, lambda: None)
loop.add_signal_handler(signal.SIGINT, lambda: None)
loop.add_signal_handler(signal.SIGUSR1, lambda: None)
hold_while_closing(loop)
loop.close()
kill(signal.SIGTERM)
print("survived the loop's close", flush=True)
ignore_for_exit()
kill(signal.SIGTERM); kill(signal.SIGINT)
print("exiting", flush=True)
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "survived the loop's close\nexiting\n"


def test_without_it_the_loop_close_would_kill_the_process():
    """The case above fails without hold_while_closing: the test can tell."""
    result = run(PRELUDE + """
loop = asyncio.new_event_loop()
loop.add_signal_handler(signal.SIGTERM, lambda: None)
loop.close()
kill(signal.SIGTERM)
print("survived", flush=True)
""")
    assert result.returncode == -15 and result.stdout == ""


def test_a_loop_with_only_the_stop_signals_leaves_no_wakeup_descriptor_behind():
    # Without set_wakeup_fd(-1), the closed loop's self-pipe descriptor stays the signal
    # wakeup fd: the next file opened gets that number and a byte per signal written into it.
    result = run(PRELUDE + """
import tempfile
loop = asyncio.new_event_loop()
loop.add_signal_handler(signal.SIGTERM, lambda: None)
loop.add_signal_handler(signal.SIGINT, lambda: None)
hold_while_closing(loop)
loop.close()
files = [tempfile.TemporaryFile() for _ in range(4)]  # take the freed descriptor numbers
kill(signal.SIGTERM)
for f in files:
    f.seek(0)
print(repr(b"".join(f.read() for f in files)), flush=True)
""")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "b''\n"
