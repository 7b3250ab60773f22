"""Download a MovieLens archive, verify it, install it atomically."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

from recsys_data.registry import BASE_URL, KNOWN


class ChecksumMismatch(ValueError):
    """The download's digest is not the expected one (nothing was installed)."""

    def __init__(self, name: str, expected: str, got: str, algorithm: str = "sha256") -> None:
        self.name, self.expected, self.got, self.algorithm = name, expected, got, algorithm
        super().__init__(f"{name}: {algorithm} mismatch: expected {expected}, got {got}")


class UnverifiedDownload(ValueError):
    """No checksum is known for this archive and skipping the check was not asked for."""


def fetch(
    name: str,
    dest_dir: Path,
    *,
    base_url: str = BASE_URL,
    force: bool = False,
    progress: bool = True,
    sha256: str | None = None,
    insecure_skip_checksum: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download ``<base_url>/<name>.zip`` into ``dest_dir/<name>.zip`` and return that path.

    The file is written to a temporary file in ``dest_dir``, verified (``sha256`` if given, else
    the one in ``KNOWN``, else ml-10m's md5), then renamed into place: a failed or mismatching
    download leaves nothing behind. An existing file is kept when it verifies (``force``
    downloads again). Raises ChecksumMismatch, UnverifiedDownload (no known digest and not
    ``insecure_skip_checksum``), or the urllib error.
    """
    known = KNOWN.get(name)
    expected = sha256 or (known.sha256 if known else None)
    md5 = known.md5 if (known and expected is None) else None
    if expected is None and md5 is None and not insecure_skip_checksum:
        raise UnverifiedDownload(
            f"{name}: no checksum is known for this archive; pass insecure_skip_checksum=True "
            "(recsys data fetch --insecure-skip-checksum) to install it unverified"
        )
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{name}.zip"
    if target.exists() and not force:
        if expected is not None and _digest(target, "sha256") == expected:
            return target
        if expected is None and (md5 is None or _digest(target, "md5") == md5):
            return target
    url = f"{base_url.rstrip('/')}/{name}.zip"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        h_sha, h_md5 = hashlib.sha256(), hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=name, disable=not progress, file=sys.stderr
            ) as bar:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    out.write(block)
                    h_sha.update(block)
                    h_md5.update(block)
                    bar.update(len(block))
        if expected is not None and h_sha.hexdigest() != expected:
            raise ChecksumMismatch(name, expected, h_sha.hexdigest())
        if expected is None and md5 is not None and h_md5.hexdigest() != md5:
            raise ChecksumMismatch(name, md5, h_md5.hexdigest(), "md5")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
