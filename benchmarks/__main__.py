"""``python -m benchmarks <command>``: the paper's grid as commands.

    python -m benchmarks report --results DIR --out DIR [--edge PI.json ...] [--threads 1]

Each command is one ``add_<name>(subparsers)`` function that registers its parser and sets
``func``; a new command (e.g. ``sweep``) is one more such function and one line in COMMANDS.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def add_report(sub):
    p = sub.add_parser("report", help="tables, figures and frontier from a sweep's results",
                       description="Reads a folder of sweep cell JSON files (schema: "
                       "benchmarks/results_schema.py) and writes report.md, a self-contained "
                       "index.html and the PNGs. Bad files are skipped and listed in the "
                       "report's log.")
    p.add_argument("--results", required=True, help="folder of cell JSON files (and any "
                   "edge_runtime benchmark JSON from a Pi/phone)")
    p.add_argument("--out", required=True, help="folder for report.md, index.html, *.png")
    p.add_argument("--edge", action="append", default=[], metavar="JSON",
                   help="an `edge_runtime benchmark --json` file from a Pi/phone (repeatable)")
    p.add_argument("--threads", type=int, default=1,
                   help="LiteRT thread count drawn on the edge frontier (default 1)")
    p.set_defaults(func=run_report)


def run_report(args) -> int:
    from benchmarks.report import build_report
    result = build_report(args.results, args.out, args.edge, args.threads)
    for path, message in result["problems"]:
        print(f"{path}: {message}", file=sys.stderr)
    print(f"{len(result['cells'])} cell(s), {len(result['problems'])} problem(s); report: "
          f"{os.path.join(args.out, 'report.md')} and {os.path.join(args.out, 'index.html')}")
    return 0


COMMANDS = [add_report]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description="The paper's grid: sweep results -> report.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
