"""``wfsearch schema``: print the JSON Schema of a design-space spec (for editor completion)."""
from __future__ import annotations

import argparse
import json

from . import examples


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of a design-space spec",
                       description="Print the JSON Schema of a design-space YAML file. Point your editor's YAML "
                                   "language server at it for completion and checks, e.g. put "
                                   "`# yaml-language-server: $schema=spec.schema.json` at the top of a spec.",
                       **examples('wfsearch schema -o spec.schema.json    # then put at the top of a spec:',
                                  '# yaml-language-server: $schema=spec.schema.json'))
    p.add_argument("--indent", type=int, default=2, choices=range(0, 9), metavar="N",
                   help="indentation of the JSON, 0 to 8 (default: 2)")
    p.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead of standard output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from wfsearch.space import spec_json_schema

    from .output import write_output

    text = json.dumps(spec_json_schema(), indent=args.indent) + "\n"
    if args.output:
        write_output(args.output, text, "-o/--output")
    else:
        print(text, end="")
    return 0
