"""The ``podd`` command: ``podd data``, ``podd distill``, ``podd evaluate``, ``podd show``."""

from __future__ import annotations

import argparse
import sys


def _cmd_data(args: argparse.Namespace) -> int:
    from podd.data import load_dataset, summary

    dataset = load_dataset(args.name, root=args.root, download=not args.no_download)
    print(summary(dataset))
    return 0


def _add_data_command(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "data", help="load a dataset (downloading and caching it) and print its summary",
        description="Load a dataset through podd's data layer and print images per split, "
                    "classes, image shape and per-class counts. NAME is one of digits, cifar10, "
                    "cifar100, cub200, tinyimagenet, imagefolder:PATH or npz:PATH.")
    p.add_argument("name", metavar="NAME", help="dataset name")
    p.add_argument("--root", default=None,
                   help="data folder (default: $PODD_DATA, else ~/.cache/podd)")
    p.add_argument("--no-download", action="store_true", help="never reach the network")
    p.set_defaults(handler=_cmd_data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podd", description="Poster Dataset Distillation: distil a dataset into one poster.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_data_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        # Errors a user can cause carry a message that says what to do: show it, not a traceback.
        print(f"podd {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
