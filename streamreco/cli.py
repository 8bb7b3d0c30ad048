"""The ``streamreco`` command: one entry point, a sub-command per role.

Settings come from ``STREAMRECO_*`` environment variables, read once here.
"""

from __future__ import annotations

import argparse
import json
import sys

from streamreco.settings import Settings


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from streams.worker import run_worker

    run_worker(settings)
    return 0


def _schema(settings: Settings, args: argparse.Namespace) -> int:
    from streamreco.events import json_schemas

    print(json.dumps(json_schemas(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamreco",
        description="Streaming, real-time recommendations for web shops. "
        "Configure with STREAMRECO_* environment variables (see README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("worker", help="run a worker: consume events, learn, publish lists").set_defaults(
        run=_worker
    )
    commands.add_parser("schema", help="print the JSON Schemas of the event contract").set_defaults(
        run=_schema
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(Settings(), args)


if __name__ == "__main__":
    sys.exit(main())
