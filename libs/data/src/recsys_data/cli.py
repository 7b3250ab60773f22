"""``recsys data ...``: summary, fetch, generate, holdout, list."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recsys_data import KNOWN, load_dataset, search_dirs
from recsys_data.fetch import fetch
from recsys_data.holdout import HoldoutError, write_holdout
from recsys_data.model import HOLDOUT_MARKER, DataFormatError, DatasetNotFound
from recsys_data.synthetic import FORMATS, generate


def register(subparsers: Any) -> None:
    data = subparsers.add_parser("data", help="fetch, inspect and generate MovieLens data sets")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("summary", help="load a data set and print its summary")
    p.add_argument("source", metavar="NAME|PATH")
    p.add_argument("--lenient", action="store_true", help="skip malformed rows instead of failing")
    p.add_argument("--metadata-only", action="store_true", help="read movies and users only")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_summary)

    p = sub.add_parser("fetch", help="download a GroupLens archive and verify its checksum")
    p.add_argument("name", choices=sorted(KNOWN))
    p.add_argument("--dest", type=Path, default=Path("data"), help="folder (default ./data)")
    p.add_argument("--base-url", default=None, help="mirror base URL (default GroupLens)")
    p.add_argument("--force", action="store_true", help="download even if present")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--insecure-skip-checksum",
        action="store_true",
        help="install an archive for which no checksum is known, unverified",
    )
    p.set_defaults(func=_fetch)

    p = sub.add_parser("generate", help="write a synthetic data set in a MovieLens format")
    p.add_argument("out", type=Path)
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="100k")
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--movies", type=int, required=True)
    p.add_argument("--ratings", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--zip", action="store_true", help="also write OUT.zip")
    p.set_defaults(func=_generate)

    p = sub.add_parser(
        "holdout",
        help="write a data set minus every user's leave-last-out TEST event, in its own format",
        description="Write SOURCE minus every user's last event (leave-last-out TEST: per user, "
        "events sorted by (timestamp, movie id); users with < 3 events keep all) into FOLDER, in "
        "SOURCE's format: the ratings file's kept lines unchanged, the other files copied, plus "
        "recsys-holdout.json naming the source and its content checksum.",
    )
    p.add_argument("source", metavar="NAME|PATH")
    p.add_argument("--out", type=Path, required=True, metavar="FOLDER")
    p.add_argument("--force", action="store_true", help="replace FOLDER if it is not empty")
    p.set_defaults(func=_holdout)

    p = sub.add_parser("list", help="known archives and the data sets found locally")
    p.set_defaults(func=_list)


def _summary(args: argparse.Namespace) -> int:
    try:
        ds = load_dataset(args.source, lenient=args.lenient, metadata_only=args.metadata_only)
    except (DataFormatError, DatasetNotFound) as exc:
        print(f"recsys data summary: {exc}", file=sys.stderr)
        return 1
    summary = ds.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            print(f"{key:<{width}}  {value}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    kwargs: dict[str, Any] = {}
    if args.base_url:
        kwargs["base_url"] = args.base_url
    try:
        path = fetch(
            args.name,
            args.dest,
            force=args.force,
            progress=not args.no_progress,
            insecure_skip_checksum=args.insecure_skip_checksum,
            **kwargs,
        )
    except (ValueError, OSError) as exc:
        print(f"recsys data fetch: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _generate(args: argparse.Namespace) -> int:
    try:
        path = generate(
            args.out,
            fmt=args.fmt,
            n_users=args.users,
            n_movies=args.movies,
            n_ratings=args.ratings,
            seed=args.seed,
            zip=args.zip,
        )
    except ValueError as exc:
        print(f"recsys data generate: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _holdout(args: argparse.Namespace) -> int:
    try:
        result = write_holdout(args.source, args.out, force=args.force)
    except (DatasetNotFound, HoldoutError) as exc:
        print(f"recsys data holdout: {exc}", file=sys.stderr)
        return 2
    except DataFormatError as exc:
        print(f"recsys data holdout: {exc}", file=sys.stderr)
        return 1
    m = result.marker
    print(f"wrote {result.path} ({m['source_format']} format, from {m['source_name']} at {m['source_path']})")
    print(
        f"  {m['ratings_file']}: {m['kept_events']} of {m['source_events']} ratings kept, "
        f"{m['removed_events']} TEST events removed (leave-last-out)"
    )
    copied = [f for f in result.files if f not in (m["ratings_file"], HOLDOUT_MARKER)]
    print(f"  copied unchanged: {', '.join(copied) or '(none)'}")
    print(f"  {HOLDOUT_MARKER}: source_content_sha256 {m['source_content_sha256']}")
    return 0


def _list(_args: argparse.Namespace) -> int:
    print("known archives (recsys data fetch NAME):")
    for name, known in KNOWN.items():
        digest = "sha256" if known.sha256 else ("md5 only" if known.md5 else "NO CHECKSUM")
        size = f"{known.size / 1e6:.1f} MB" if known.size else "size unknown"
        print(f"  {name:<16} {known.format:<7} {size:<14} {digest}")
    print("found locally:")
    found = False
    for d in search_dirs():
        if not d.is_dir():
            continue
        for entry in sorted(d.iterdir()):
            if entry.suffix == ".zip" or (entry.is_dir() and not entry.name.startswith(".")):
                print(f"  {entry.stem if entry.is_file() else entry.name:<24} {entry}")
                found = True
    if not found:
        print("  (none)")
    return 0
