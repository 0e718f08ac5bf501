"""How `evledger` binds its flags to EVLEDGER_* variables, words a refusal, and turns what a
command raises into an exit status: 0 done, 1 failed, 2 a command line (or variable) it cannot
use, 3 a log that needs `evledger rebuild`, 130 interrupted."""
from __future__ import annotations

import argparse
import logging
import sys

import click
from click.core import ParameterSource

# `parse_args` runs the command line with this as the context's object: each command then
# hands back its options instead of running.
PARSE_ONLY = object()


class Option(click.Option):
    """A click option whose error names where the bad value came from: the flag, or the
    EVLEDGER_* variable (click's own hint names both, whichever was used)."""

    def get_error_hint(self, ctx: click.Context) -> str:
        flag = max(self.opts, key=len)
        source = ctx.get_parameter_source(self.name)
        if self.envvar and source is ParameterSource.ENVIRONMENT:
            return self.envvar
        if not self.envvar or source is ParameterSource.COMMANDLINE:
            return flag
        return f"{flag} (or {self.envvar})"


def option(*decls: str, **attrs):
    """click.option with an Option; `envvar=` binds the variable, shown in --help."""
    return click.option(*decls, cls=Option, show_envvar="envvar" in attrs, **attrs)


class OutOfRange(click.BadParameter):
    """A number outside its range, said as a rule on the setting that gave it:
    "--header-timeout must be over 0 seconds, not 0"."""

    def format_message(self) -> str:
        return f"{self.param.get_error_hint(self.ctx)} {self.message}"


class Seconds(click.FloatRange):
    """Seconds over a lower bound (exclusive), refused as an OutOfRange."""

    def __init__(self, over: float = 0.0):
        super().__init__(min=over, min_open=True)

    def convert(self, value, param, ctx):
        seconds = click.FLOAT.convert(value, param, ctx)  # "'soon' is not a valid float."
        if not seconds > self.min:
            raise OutOfRange(f"must be over {self.min:g} seconds, not {seconds:g}", ctx, param)
        return seconds


def _listed_in_full(attrs: dict) -> dict:
    # click cuts a command's help to about 45 characters in its group's list; the first
    # paragraph, in full, reads better.
    if attrs.get("help") and not attrs.get("short_help"):
        attrs["short_help"] = attrs["help"].split("\n\n")[0]
    return attrs


class Command(click.Command):
    """An evledger command. Its callback takes one namespace: every option on the way to it,
    the global ones included (what open_service and the like read). What it raises for a bad
    input, a missing ledger or an unreachable chain ends it with one line on stderr, no
    traceback."""

    def __init__(self, *args, **attrs):
        super().__init__(*args, **_listed_in_full(attrs))

    def invoke(self, ctx: click.Context):
        args = namespace(ctx)
        if ctx.obj is PARSE_ONLY:
            return args
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns the output
        return run_reporting_errors(ctx.command_path, lambda: ctx.invoke(self.callback, args))


class Group(click.Group):
    """A group of evledger commands, listed in the order they were added (the main job first)."""

    command_class = Command
    group_class = type  # subgroups are Groups too

    def __init__(self, *args, **attrs):
        super().__init__(*args, **_listed_in_full(attrs))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


def namespace(ctx: click.Context) -> argparse.Namespace:
    """The options of `ctx` and of every group above it, as one namespace."""
    contexts = []
    while ctx is not None:
        contexts.append(ctx)
        ctx = ctx.parent
    merged: dict = {}
    for each in reversed(contexts):
        merged.update(each.params)
    return argparse.Namespace(**merged)


def run_reporting_errors(command_path: str, run) -> int:
    """`run()`'s exit status; the errors a user can act on become a line on stderr and a status."""
    from anchor.chain import ChainError
    from ingest.keys import KeyFileError
    from ingest.ledger import CheckpointMismatch, LedgerError, LogCorruption
    from ingest.log import LogError

    try:
        return run()
    except (ValueError, OSError, LogError, LedgerError, KeyFileError, ChainError) as exc:
        print(f"{command_path}: error: {exc}", file=sys.stderr)
        return 1
    except (LogCorruption, CheckpointMismatch) as exc:
        print(f"{command_path}: error: {exc}; run `evledger rebuild LEDGER`", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # what was opened is closed on the way out (with-blocks)
        print(f"{command_path}: interrupted", file=sys.stderr)
        return 130


class UsageStatus(int):
    """Exit status 2 that carries the message printed with it: a shell sees 2, a caller of
    main() in the same process sees the reason in SystemExit.code."""

    def __new__(cls, message: str, status: int = 2):
        self = super().__new__(cls, status)
        self.message = message
        return self

    def __str__(self) -> str:
        return self.message


def refuse(exc: click.UsageError) -> SystemExit:
    """Print a refused command line as `evledger COMMAND: error: ...` after its usage line."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):  # a bare group: its help
        exc.show()
        return SystemExit(UsageStatus(exc.format_message(), exc.exit_code))
    path = exc.ctx.command_path if exc.ctx is not None else "evledger"
    if exc.ctx is not None:
        click.echo(f"{exc.ctx.get_usage()}\nTry '{path} --help' for help.\n", err=True)
    message = f"{path}: error: {exc.format_message()}"
    click.echo(message, err=True)
    return SystemExit(UsageStatus(message, exc.exit_code))
