"""``reidlab datasets [NAME ROOT]``: list known datasets, or load one and print its counts."""

from __future__ import annotations

import argparse
import logging


class _Collect(logging.Handler):
    """Counts the warnings a loader logs (logging already prints them on stderr)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reidlab.commands.argtypes import add_dataset_options, nonneg_int

    parser.add_argument("name", nargs="?", help="dataset name (omit to list the known ones)")
    parser.add_argument("root", nargs="?", help="dataset folder (or .csv for 'custom')")
    parser.add_argument(
        "--variant",
        choices=["labeled", "detected"],
        help="cuhk03: labeled or detected boxes (required for cuhk03)",
    )
    parser.add_argument(
        "--version",
        dest="ds_version",
        metavar="{v1,v2}",
        help="msmt17: v1 or v2 (required for msmt17; v2 has masked faces)",
    )
    parser.add_argument("--split-index", type=nonneg_int, help="viper: split 0..9 (default 0)")
    parser.add_argument("--seed", type=int, help="viper: split seed (default: the fixed one)")
    parser.add_argument(
        "--verify-images",
        action="store_true",
        help="decode every image and report all unreadable files (slow)",
    )
    parser.add_argument(
        "--no-strict",
        dest="strict",
        action="store_false",
        help="skip unparseable file names with a warning instead of failing",
    )
    add_dataset_options(parser)


def run(args: argparse.Namespace) -> int:
    from reidlab.commands.argtypes import dataset_options
    from reidlab.datasets import available_datasets, build_dataset

    if not args.name:
        print("known datasets (see data/README.md for layouts and options):")
        for name in available_datasets():
            print(f"  {name}")
        return 0
    if not args.root:
        from reidlab.errors import ReidlabError

        raise ReidlabError(f"give the dataset folder: reidlab datasets {args.name} ROOT")
    opts = dataset_options(args) | {
        "variant": args.variant,
        "version": args.ds_version,
        "split_index": args.split_index,
        "seed": args.seed,
    }
    opts = {k: v for k, v in opts.items() if v is not None}
    if args.verify_images:
        opts["verify_images"] = True
    if not args.strict:
        opts["strict"] = False
    collect = _Collect()
    logging.getLogger("reidlab").addHandler(collect)
    try:
        ds = build_dataset(args.name, args.root, **opts)
    finally:
        logging.getLogger("reidlab").removeHandler(collect)
    print(ds.summary())
    for key, value in ds.info.items():
        if isinstance(value, list) and len(value) > 8:
            value = f"[{len(value)} values]"
        print(f"  {key}: {value}")
    print(f"warnings: {len(collect.messages)}" + (" (printed above)" if collect.messages else ""))
    return 0
