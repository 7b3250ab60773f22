"""Release images by digest: the CI step that writes them into an overlay, and the check after it.

A release build pushes each image and learns its digest (``docker buildx build --push
--metadata-file <svc>.json`` writes ``containerimage.digest``); this step writes
``digest: sha256:…`` (and the release tag) into the overlay's ``images:`` entries, so the cluster
pulls exactly the bytes CI built and tested, never whatever a tag points at later::

    python -m recsys_tools.release pin deploy/k8s/overlays/prod --tag 0.2.0 \\
        --buildx-metadata build/catalog.json build/retriever.json ...
    python -m recsys_tools.release pin deploy/k8s/overlays/prod --image catalog=sha256:<64 hex> ...
    python -m recsys_tools.release check deploy/k8s/overlays/prod   # exit 1: an image without one

Only the ``- name: recsys/<image>`` entries are touched, in place (comments and order kept).
``check`` fails for every ``recsys/*`` entry without a digest (the release workflow runs it
after ``pin``; the repository's own prod overlay has none until a release, by design).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
PREFIX = "recsys/"


class ReleaseError(Exception):
    """Bad input to the release step; the message says what to fix."""


@dataclass
class Entry:
    """One ``images:`` entry: its lines [start, end) in the file."""

    name: str
    start: int
    end: int


def _kustomization(overlay: Path) -> Path:
    for name in ("kustomization.yaml", "kustomization.yml", "Kustomization"):
        if (overlay / name).is_file():
            return overlay / name
    raise ReleaseError(f"{overlay}: no kustomization.yaml")


def _entries(lines: list[str]) -> list[Entry]:
    """The entries of the top-level ``images:`` list."""
    try:
        top = next(i for i, line in enumerate(lines) if line.rstrip() == "images:")
    except StopIteration:
        raise ReleaseError("the kustomization has no top-level images: list") from None
    entries: list[Entry] = []
    i = top + 1
    while i < len(lines):
        line = lines[i]
        if line.strip() and not line.startswith((" ", "#", "-")):
            break  # the next top-level key
        m = re.match(r"^(\s*)- name:\s*(\S+)\s*$", line)
        if m:
            if entries:
                entries[-1].end = i
            entries.append(Entry(m.group(2), i, len(lines)))
        i += 1
    if entries:
        entries[-1].end = i
    for entry in entries:  # comment and blank lines after an entry belong to what follows
        while entry.end > entry.start + 1 and lines[entry.end - 1].lstrip().startswith(("#", "\n")):
            entry.end -= 1
        while entry.end > entry.start + 1 and not lines[entry.end - 1].strip():
            entry.end -= 1
    return entries


def _field_indent(lines: list[str], entry: Entry) -> str:
    dash = lines[entry.start]
    return " " * (len(dash) - len(dash.lstrip()) + 2)


def pin(text: str, digests: dict[str, str], tag: str | None = None) -> str:
    """``text`` (a kustomization) with ``digest:`` (and ``newTag:`` when ``tag``) set for each
    ``recsys/<image>`` in ``digests``; every key must name an entry."""
    for image, digest in digests.items():
        if not DIGEST_RE.match(digest):
            raise ReleaseError(f"{image}: {digest!r} is not a sha256 digest (sha256:<64 hex digits>)")
    if tag is not None and not TAG_RE.match(tag):
        raise ReleaseError(f"{tag!r} is not a valid image tag")
    lines = text.splitlines(keepends=True)
    entries = {e.name: e for e in _entries(lines)}
    unknown = sorted(set(digests) - {n.removeprefix(PREFIX) for n in entries if n.startswith(PREFIX)})
    if unknown:
        known = sorted(n.removeprefix(PREFIX) for n in entries if n.startswith(PREFIX))
        raise ReleaseError(f"no images entry for {', '.join(unknown)} (the overlay has {', '.join(known)})")
    # edit from the bottom up so earlier line numbers stay valid
    for entry in sorted(entries.values(), key=lambda e: -e.start):
        short = entry.name.removeprefix(PREFIX)
        if not entry.name.startswith(PREFIX) or short not in digests:
            continue
        indent = _field_indent(lines, entry)
        body = [
            line
            for line in lines[entry.start + 1 : entry.end]
            if not re.match(rf"^{indent}digest:", line) and not (tag and re.match(rf"^{indent}newTag:", line))
        ]
        if tag:
            body.append(f"{indent}newTag: {tag}\n")
        body.append(f"{indent}digest: {digests[short]}\n")
        lines[entry.start + 1 : entry.end] = body
    return "".join(lines)


def missing_digests(text: str) -> list[str]:
    """The ``recsys/*`` images of ``text`` without a valid ``digest:``."""
    lines = text.splitlines(keepends=True)
    missing = []
    for entry in _entries(lines):
        if not entry.name.startswith(PREFIX):
            continue
        indent = _field_indent(lines, entry)
        digests = [
            line.split(":", 1)[1].strip()
            for line in lines[entry.start + 1 : entry.end]
            if re.match(rf"^{indent}digest:", line)
        ]
        if not digests or not DIGEST_RE.match(digests[-1]):
            missing.append(entry.name)
    return missing


def read_buildx_metadata(path: Path) -> tuple[str, str]:
    """(image short name, digest) from a ``docker buildx build --metadata-file`` JSON."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"{path}: not a readable buildx metadata file: {exc}") from exc
    digest = meta.get("containerimage.digest")
    names = str(meta.get("image.name", "")).split(",")
    if not digest or not names[0]:
        raise ReleaseError(f"{path}: no containerimage.digest / image.name (was the image pushed?)")
    repo = names[0].rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    return repo, str(digest)


def _parse_pairs(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, digest = pair.partition("=")
        if not sep or not name:
            raise ReleaseError(f"{pair!r}: want <image>=sha256:<digest>, e.g. catalog=sha256:...")
        out[name.removeprefix(PREFIX)] = digest
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsys_tools.release", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_pin = sub.add_parser("pin", help="write release digests (and tag) into an overlay")
    p_pin.add_argument("overlay", type=Path)
    p_pin.add_argument(
        "--image",
        dest="images",
        action="append",
        default=[],
        metavar="NAME=DIGEST",
        help="<image>=sha256:<digest> (the image without recsys/); repeat per image",
    )
    p_pin.add_argument("--buildx-metadata", nargs="*", type=Path, default=[], metavar="FILE")
    p_pin.add_argument("--tag", help="the release tag to set as newTag as well")
    p_check = sub.add_parser("check", help="fail when a recsys/* image of an overlay has no digest")
    p_check.add_argument("overlay", type=Path)
    args = parser.parse_args(argv)
    try:
        path = _kustomization(args.overlay)
        text = path.read_text(encoding="utf-8")
        if args.cmd == "check":
            missing = missing_digests(text)
            for name in missing:
                print(f"{path}: {name} has no digest (run the release pin step)", file=sys.stderr)
            return 1 if missing else 0
        digests = _parse_pairs(args.images)
        for meta in args.buildx_metadata:
            name, digest = read_buildx_metadata(meta)
            digests[name] = digest
        if not digests:
            raise ReleaseError("no digests given (pairs or --buildx-metadata files)")
        path.write_text(pin(text, digests, args.tag), encoding="utf-8")
        print(f"{path}: pinned {', '.join(sorted(digests))}")
        return 0
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
