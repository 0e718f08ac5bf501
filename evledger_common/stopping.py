"""Stop signals while a process closes its ledgers (`evledger serve`, `evledger stream worker`),
and stopping such a process from outside (terminate()).

Once a stop has begun, a repeated SIGTERM (a supervisor sending it again) must not kill the
process half way through closing: it is only noted. A second Ctrl-C (SIGINT) is an operator
who will not wait for a stuck close; the process then exits at once, status 130. Nothing
acknowledged is lost either way: every receipt was fsynced to the log first, and the
projections are rebuilt from it on the next start.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess

log = logging.getLogger("evledger")

_interrupted = False


def _while_closing(signum, frame) -> None:
    global _interrupted
    if signum == signal.SIGINT:
        if _interrupted:
            log.warning("SIGINT again: exiting without waiting for the close (acknowledged records are in "
                        "the log; the next start catches up from it)")
            os._exit(130)
        _interrupted = True
        log.warning("stopping: closing the ledgers; press Ctrl-C again to exit at once")
        return
    log.warning("%s received while stopping: the ledgers are being closed", signal.Signals(signum).name)


def hold_while_closing(loop=None, began_with: int | None = None) -> None:
    """From now until ignore_for_exit(): SIGTERM is noted, a second SIGINT exits at once.
    With `loop` (an asyncio loop that handles these signals), take them off it so that closing
    it leaves these handlers in place. `began_with`: the signal that began the stop, if one
    did; after a SIGINT, the next SIGINT is the second."""
    global _interrupted
    if began_with == signal.SIGINT:
        _interrupted = True
    stops = (signal.SIGTERM, signal.SIGINT)
    for sig in stops:  # replaces the loop's C-level handler: no moment with the default one
        signal.signal(sig, _while_closing)
    if loop is None:
        return
    handlers = getattr(loop, "_signal_handlers", None)  # asyncio's unix loops
    for sig in stops:
        if isinstance(handlers, dict):
            handlers.pop(sig, None)  # else loop.close() would put the default handler back
        else:  # another loop: its removal resets to the default for a moment
            loop.remove_signal_handler(sig)
            signal.signal(sig, _while_closing)
    if isinstance(handlers, dict) and not handlers:
        # What remove_signal_handler does for the last one: else, once the loop closes its
        # self-pipe, each signal would write a byte to whatever file reuses that descriptor.
        signal.set_wakeup_fd(-1)


def ignore_for_exit() -> None:
    """The ledgers are closed and the process only exits now. Python's finalization would put a
    Python handler back to the default, which would make a late repeat a death by signal."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


def terminate(proc: subprocess.Popen, timeout: float, sig: int = signal.SIGTERM) -> bool:
    """Stop a child process as an operator would: `sig`, then SIGKILL if it has not exited
    within `timeout` seconds. True when it stopped on `sig` (or had exited already)."""
    if proc.poll() is not None:
        return True
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
