"""The ``examples:`` section every subcommand's ``--help`` ends with."""
from __future__ import annotations

import argparse


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that an epilog starting with ``examples:`` keeps its lines."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def examples(*lines: str) -> dict:
    """``add_parser`` keywords for an ``examples:`` epilog: one command (with an optional # comment) a line."""
    return dict(epilog="examples:\n" + "".join(f"  {line}\n" for line in lines), formatter_class=HelpFormatter)
