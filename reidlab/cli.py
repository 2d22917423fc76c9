"""The ``reidlab`` command: thin. It parses arguments and calls the library.

Each subcommand lives in ``reidlab/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; a module is imported only when its subcommand runs, so ``reidlab --help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module under reidlab.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "datasets": ("datasets", "load a dataset and print its split counts (or list known datasets)"),
    "synthetic": ("synthetic", "generate the built-in synthetic dataset"),
    "detect": ("detect", "detect faces in a dataset's splits (cached) and report rates"),
    "anonymize": ("anonymize", "write an anonymized copy of a dataset, with a manifest"),
    "verify": ("verify", "check an anonymized copy against its manifest"),
    "evaluate": ("evaluate", "evaluate a re-ID model on a dataset (optionally anonymized)"),
    "train": ("train", "train a re-ID model on original or anonymized data"),
    "train-faces": ("train_faces", "train the reidface face localizer on parsing masks"),
    "study": ("study", "run the study notebooks with papermill into papermill_runs/"),
}


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``reidlab anonymize: error: argument --sigma: must be > 0,
    got -3 (see reidlab anonymize --help)``, exit code 2 (argparse's own prints the usage too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    from reidlab import __version__

    parser = Parser(
        prog="reidlab",
        description="How much do person re-ID systems depend on faces, and what does face "
        "anonymization cost them?",
    )
    parser.add_argument("--version", action="version", version=f"reidlab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == chosen:
            mod = importlib.import_module(f"reidlab.commands.{module}")
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    from reidlab.errors import ReidlabError

    try:
        return int(args._run(args) or 0)
    except (ReidlabError, ValueError, OSError) as e:
        # bad input (reidlab's own errors, a library's ValueError on a bad value, a file that
        # cannot be read or written): one line and exit 2; -v also prints the traceback
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"reidlab {args.command}: error: {one_line(e) or type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"reidlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
