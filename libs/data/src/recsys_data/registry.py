"""Known GroupLens MovieLens archives.

sha256 values come from tensorflow_datasets' ``url_checksums/movielens.txt`` (ml-100k, ml-1m,
ml-20m, ml-25m, ml-latest-small). No published sha256 was found for ml-10m, ml-32m and ml-latest
(ml-latest is re-released over time): for those ``sha256`` is None and ``fetch`` refuses to
install the download unless ``insecure_skip_checksum=True`` (``--insecure-skip-checksum``), except
that ml-10m is verified against the md5 that several projects pin.
"""

from __future__ import annotations

from typing import NamedTuple

BASE_URL = "https://files.grouplens.org/datasets/movielens"


class KnownDataset(NamedTuple):
    url: str
    sha256: str | None
    size: int | None  # bytes of the zip
    format: str  # "100k" | "1m" | "latest"
    md5: str | None = None  # only used where no sha256 is known


def _url(name: str) -> str:
    return f"{BASE_URL}/{name}.zip"


KNOWN: dict[str, KnownDataset] = {
    "ml-100k": KnownDataset(
        _url("ml-100k"), "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", 4924029, "100k"
    ),
    "ml-1m": KnownDataset(
        _url("ml-1m"), "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", 5917549, "1m"
    ),
    "ml-10m": KnownDataset(_url("ml-10m"), None, None, "1m", md5="ce571fd55effeba0271552578f2648bd"),
    "ml-20m": KnownDataset(
        _url("ml-20m"),
        "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
        198702078,
        "latest",
    ),
    "ml-25m": KnownDataset(
        _url("ml-25m"),
        "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
        261978986,
        "latest",
    ),
    "ml-32m": KnownDataset(_url("ml-32m"), None, None, "latest"),
    "ml-latest-small": KnownDataset(
        _url("ml-latest-small"),
        "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
        978202,
        "latest",
    ),
    "ml-latest": KnownDataset(_url("ml-latest"), None, None, "latest"),
}
