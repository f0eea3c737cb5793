"""The ``wfsearch`` command line: one module per subcommand, each with ``register(subparsers)``.

A user's mistake (`UserError`, or a `ValueError` from validating their input) prints one line and
exits with status 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from wfsearch.errors import UserError

# subcommand modules, in the order `wfsearch --help` lists them
COMMANDS = ["run", "bench", "evaluate", "proxy_check", "export", "train", "validate", "sample", "schema", "show",
            "analyze", "erf", "report", "dashboard", "simulate"]
WRITE_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)  # met by a read-only command only when it writes


class Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line, as every other mistake (the usage is in --help)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that an epilog starting with ``examples:`` keeps its lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def examples(*lines: str) -> dict:
    """``add_parser`` keywords for an ``examples:`` epilog: one command (with an optional # comment) a line."""
    return dict(epilog="examples:\n" + "".join(f"  {line}\n" for line in lines), formatter_class=HelpFormatter)


def check_min(args: argparse.Namespace, low: int | float, *flags: str) -> None:
    """Each flag (its dest; None: not given) at least ``low``, else one line ``--flag: value: must be >= low``."""
    for flag in flags:
        v = getattr(args, flag)
        if v is not None and v < low:
            raise UserError(f"--{flag.replace('_', '-')}: {v}: must be >= {low}")


def check_ranges(*flags: tuple[str, int | None, int, int]) -> None:
    """Each ``(flag, value, low, high)``: an integer flag (None: not given) in [low, high], else one line."""
    for flag, value, low, high in flags:
        if value is not None and not low <= value <= high:
            raise UserError(f"{flag}: {value}: must lie in [{low}, {high}]")


def add_spec_args(p: argparse.ArgumentParser, help: str = "design-space YAML, e.g. spaces/predictors.yaml") -> None:
    """The SPEC argument and ``--set`` overrides of a command that loads a spec."""
    p.add_argument("spec", metavar="SPEC", help=help)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a key of the spec, the value read as YAML (repeatable), "
                        "e.g. --set study.trials=8 --set space.rank_ratio.choice=[2,4]")


def add_study_args(p: argparse.ArgumentParser) -> None:
    """STUDY folder or --storage URL [--study NAME], for the commands that read a study."""
    p.add_argument("study", nargs="?", metavar="STUDY", help="study folder, e.g. studies/predictors (holds optuna.db)")
    p.add_argument("--storage", metavar="URL", help="SQLAlchemy URL of the study storage instead of a folder")
    p.add_argument("--study", dest="study_name", metavar="NAME", help="study name within the storage")


def build_parser() -> argparse.ArgumentParser:
    from wfsearch import __version__

    parser = Parser(prog="wfsearch", description="Design-space exploration for WeightFormer-style vision backbones.")
    parser.add_argument("--version", action="version", version=f"wfsearch {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"wfsearch.cli.{name}").register(sub)
    for p in sub.choices.values():  # global flags also after the subcommand; SUPPRESS keeps one given before
        g = p.add_argument_group("global options (also accepted before the command)")
        g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
        g.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at INFO level")
    return parser


def unknown_command(argv: list[str]) -> str | None:
    """The one-line error for a misspelled subcommand (with a did-you-mean), or None."""
    from wfsearch.suggest import did_you_mean

    word = next((a for a in argv if not a.startswith("-")), None)
    names = [n.replace("_", "-") for n in COMMANDS]
    if word is None or word in names:
        return None
    hint = did_you_mean(word, names) or ";"
    return f"unknown command {word!r}{hint} commands are {', '.join(names)} (see wfsearch --help)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    bad = unknown_command(argv)
    if bad:
        print(f"usage: wfsearch [-h] [--version] [--debug] [-v] COMMAND ...\nwfsearch: error: {bad}", file=sys.stderr)
        return 2
    try:
        os.getcwd()
    except FileNotFoundError:
        print("wfsearch: error: the current folder no longer exists (deleted while this shell was in it); "
              "cd to an existing folder and run again", file=sys.stderr)
        return 2
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        level = logging.INFO if args.verbose else logging.WARNING
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        for handler in logging.getLogger().handlers:  # library loggers may log more to files, not here
            handler.setLevel(level)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a full disk or a closed pipe behind stdout shows here, not at exit
        return status
    except KeyboardInterrupt:
        print("wfsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `wfsearch show ... | head -1`: the reader has what it wanted
        _drop_stdout()
        return 141  # 128 + SIGPIPE, as a command killed by the broken pipe would end
    except ValueError as e:  # UserError and validation errors of user input
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"wfsearch: error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:  # a file the user named (missing, a folder, read-only ...) or standard output
        if debug:
            raise
        from .output import output_error

        if e.errno in WRITE_ERRORS and e.filename is None:  # standard output (`wfsearch schema > /dev/full`)
            _drop_stdout()
            where, text = "standard output", output_error(e).split(";")[0] + "; the output is incomplete"
        elif e.errno in WRITE_ERRORS:
            where, text = e.filename, output_error(e)
        else:
            where, text = e.filename or type(e).__name__, e.strerror or str(e) or "failed"
        print(f"wfsearch: error: {where}: {text}", file=sys.stderr)
        return 2


def _drop_stdout() -> None:
    """Point standard output at /dev/null, so that Python's flush at exit meets no broken pipe or full disk."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # stdout is not a file (captured in tests)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
