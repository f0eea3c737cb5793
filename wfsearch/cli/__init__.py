"""The ``wfsearch`` command line: one module per subcommand, each with ``register(subparsers)``.

A user's mistake (`UserError`, or a `ValueError` from validating their input) prints one line and
exits with status 2; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand modules, in the order `wfsearch --help` lists them
COMMANDS = [
    "run",
    "bench",
    "evaluate",
    "proxy_check",
    "export",
    "train",
    "validate",
    "sample",
    "schema",
    "show",
    "analyze",
    "erf",
    "report",
    "dashboard",
    "simulate",
]


def build_parser() -> argparse.ArgumentParser:
    from wfsearch import __version__

    parser = argparse.ArgumentParser(
        prog="wfsearch", description="Design-space exploration for WeightFormer-style vision backbones.")
    parser.add_argument("--version", action="version", version=f"wfsearch {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"wfsearch.cli.{name}").register(sub)
    for p in sub.choices.values():  # the global flags also work after the subcommand
        add_global_flags(p)
    return parser


def add_global_flags(p: argparse.ArgumentParser) -> None:
    """``--debug`` and ``-v`` on a subcommand; SUPPRESS keeps the value given before the subcommand."""
    g = p.add_argument_group("global options (also accepted before the command)")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
    g.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at INFO level")


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
        parser = build_parser()
        args = parser.parse_args(argv)
        level = logging.INFO if args.verbose else logging.WARNING
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        for handler in logging.getLogger().handlers:  # library loggers may log more to files, not here
            handler.setLevel(level)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("wfsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `wfsearch sample ... | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except ValueError as e:  # UserError and validation errors of user input
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"wfsearch: error: {msg}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        if debug:
            raise
        print(f"wfsearch: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
