"""``reidlab verify DST``: check an anonymized copy against its manifest (exit 1 on any mismatch)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dst", help="folder written by `reidlab anonymize`")
    parser.add_argument(
        "--no-hash",
        dest="hash",
        action="store_false",
        help="check presence, sizes (where the manifest records them) and counts only (skip sha256)",
    )


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from reidlab.anonymize.export import MANIFEST, verify_export
    from reidlab.errors import ReidlabError

    # not an export at all is bad input (exit 2); a damaged export is a finding (exit 1, listed)
    if not (Path(args.dst) / MANIFEST).is_file():
        raise ReidlabError(
            f"{args.dst} holds no {MANIFEST}: not a folder written by `reidlab anonymize` "
            "(or its run has not finished: run the same anonymize command again)"
        )
    problems = verify_export(args.dst, check_hashes=args.hash)
    if problems:
        print(f"{args.dst}: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    how = "size and sha256" if args.hash else "size (no sha256 checked)"
    print(f"{args.dst}: OK (every file present and matching its manifest: {how})")
    return 0
