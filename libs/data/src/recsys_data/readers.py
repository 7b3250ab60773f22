"""Readers for the MovieLens formats, from a zip or an extracted folder.

Every reader is strict by default: the first malformed row raises :class:`DataFormatError` naming
the file and the line. With ``lenient=True`` malformed rows are skipped, counted in
``Dataset.skipped_rows`` and reported in ONE warning. Ratings are parsed with a vectorised fast
path (chunks of lines, ``str.split`` + numpy conversions); when a chunk does not parse cleanly it
is re-read line by line so the error names the exact line.

Rating scales: ml-100k and ml-1m hold whole stars 1..5; ml-10m (a ``.dat`` folder without
``users.dat``) and the ml-latest family hold half stars 0.5..5.0.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from recsys_core.demographics import GENDERS, ML1M_AGES, ML1M_OCCUPATIONS
from recsys_core.validation import RATING_MAX, RATING_MIN, RATING_STEP

from recsys_data.model import (
    HOLDOUT_MARKER,
    DataFormatError,
    Dataset,
    DatasetNotFound,
    Interactions,
    Movie,
    User,
)

log = logging.getLogger(__name__)

# format -> files that identify it (any of them)
_MARKERS: dict[str, tuple[str, ...]] = {
    "100k": ("u.data", "u.item"),
    "1m": ("ratings.dat", "movies.dat"),
    "latest": ("ratings.csv", "movies.csv"),
}
_RATINGS_FILE = {"100k": "u.data", "1m": "ratings.dat", "latest": "ratings.csv"}

NO_GENRE = frozenset({"unknown", "(no genres listed)"})

_CHUNK_BYTES = 8 << 20
_INT = re.compile(r"[0-9]+")
_RATING = re.compile(r"[0-9]+(\.[0-9]+)?")
_YEAR = re.compile(r"\s*\((\d{4})(?:\s*[-–]\s*(?:\d{4})?)?\)\s*$")
_SEP_NAMES = {"\t": "tab", ",": "comma", "::": "'::'", "|": "'|'"}


# ---------------------------------------------------------------------------------------------
# problems: strict raises on the first, lenient counts them and warns once


@dataclass
class _Problems:
    lenient: bool
    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, file: str, line: int | None, message: str) -> None:
        if not self.lenient:
            raise DataFormatError(file, line, message)
        self.count += 1
        if len(self.first) < 5:
            self.first.append(f"{file}:{line}")

    def warn(self, source: str) -> None:
        if self.count:
            log.warning(
                "%s: skipped %d malformed row(s) (lenient mode), first at %s",
                source,
                self.count,
                ", ".join(self.first),
            )


# ---------------------------------------------------------------------------------------------
# where the files are: a zip or a folder, files directly inside or in one subfolder


class _Source:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sha256: str | None = None
        self._zip: zipfile.ZipFile | None = None
        self._files: dict[str, str] = {}  # base name -> member / file path
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise DatasetNotFound(f"{path}: not a zip file or a folder with MovieLens files")
            self.sha256 = _sha256_file(path)
            self._zip = zipfile.ZipFile(path)
            groups: dict[str, dict[str, str]] = {}
            for member in self._zip.namelist():
                if member.endswith("/") or member.startswith("__MACOSX"):
                    continue
                parts = member.split("/")
                if len(parts) > 2:
                    continue
                prefix = parts[0] if len(parts) == 2 else ""
                groups.setdefault(prefix, {})[parts[-1]] = member
            self._files = self._pick(groups, str(path))
        elif path.is_dir():
            groups = {"": {p.name: str(p) for p in path.iterdir() if p.is_file()}}
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                groups[sub.name] = {p.name: str(p) for p in sub.iterdir() if p.is_file()}
            self._files = self._pick(groups, str(path))
        else:
            raise DatasetNotFound(f"{path}: no such file or folder")
        self.format = next(fmt for fmt, names in _MARKERS.items() if any(n in self._files for n in names))

    @staticmethod
    def _pick(groups: dict[str, dict[str, str]], where: str) -> dict[str, str]:
        markers = {n for names in _MARKERS.values() for n in names}
        if "" in groups and markers & groups[""].keys():
            return groups[""]
        found = [g for name, g in groups.items() if name and markers & g.keys()]
        if len(found) == 1:
            return found[0]
        if not found:
            raise DatasetNotFound(
                f"{where}: no MovieLens files (u.data/u.item, ratings.dat/movies.dat or "
                "ratings.csv/movies.csv), directly or in one subfolder"
            )
        raise DatasetNotFound(f"{where}: more than one subfolder holds MovieLens files")

    def has(self, name: str) -> bool:
        return name in self._files

    def names(self) -> list[str]:
        """Base names of the data set's files (the picked folder or zip subfolder), sorted."""
        return sorted(self._files)

    def copy(self, name: str, dest: Path) -> None:
        """Copy one file unchanged to ``dest`` (streamed, so large files do not sit in memory)."""
        where = self._files[name]
        if self._zip is not None:
            with self._zip.open(where) as fin, dest.open("wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
        else:
            shutil.copyfile(where, dest)

    def read(self, name: str) -> bytes:
        where = self._files[name]
        if self._zip is not None:
            return self._zip.read(where)
        return Path(where).read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# ratings: vectorised fast path, line-by-line slow path for the chunks that need it


@dataclass
class _Columns:
    users: list[np.ndarray] = field(default_factory=list)
    movies: list[np.ndarray] = field(default_factory=list)
    ratings: list[np.ndarray] = field(default_factory=list)
    times: list[np.ndarray] = field(default_factory=list)
    lines: list[np.ndarray] = field(default_factory=list)

    def add(self, u: np.ndarray, m: np.ndarray, r: np.ndarray, t: np.ndarray, lines: np.ndarray) -> None:
        self.users.append(u)
        self.movies.append(m)
        self.ratings.append(r)
        self.times.append(t)
        self.lines.append(lines)

    def arrays(self) -> tuple[np.ndarray, ...]:
        def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

        return (
            cat(self.users, np.int64),
            cat(self.movies, np.int64),
            cat(self.ratings, np.float64),
            cat(self.times, np.int64),
            cat(self.lines, np.int64),
        )


def _iter_chunks(body: bytes) -> list[tuple[int, bytes]]:
    """Split ``body`` at newlines into ~8 MiB chunks: [(index of first line, chunk)]."""
    out: list[tuple[int, bytes]] = []
    start, line = 0, 0
    n = len(body)
    while start < n:
        end = body.find(b"\n", min(start + _CHUNK_BYTES, n))
        end = n if end < 0 else end
        chunk = body[start:end]
        out.append((line, chunk))
        line += chunk.count(b"\n") + 1
        start = end + 1
    return out


def _fast_chunk(
    chunk: bytes, sep: str, encoding: str, int_rating: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Parse a clean chunk, or return None when anything looks off (the slow path says what)."""
    allowed = b"0123456789\n" + sep.encode() + (b"" if int_rating else b".")
    if chunk.translate(None, allowed):
        return None
    try:
        text = chunk.decode(encoding)
    except UnicodeDecodeError:
        return None
    tokens = text.replace("\n", sep).split(sep)
    n_lines = text.count("\n") + 1
    if len(tokens) != 4 * n_lines or "" in tokens:
        return None
    # exactly 3 separators per line: the i-th token of each line sits at a line end
    if sep in ("\t", ",", "::"):
        per_line = np.fromiter((line.count(sep) for line in text.split("\n")), np.int64, n_lines)
        if (per_line != 3).any():
            return None
    try:
        u = np.array(tokens[0::4], dtype=np.int64)
        m = np.array(tokens[1::4], dtype=np.int64)
        r = np.array(tokens[2::4], dtype=np.int64 if int_rating else np.float64)
        t = np.array(tokens[3::4], dtype=np.int64)
    except ValueError:
        return None
    return u, m, r, t


def _slow_chunk(
    chunk: bytes,
    first_line: int,
    file: str,
    sep: str,
    encoding: str,
    int_rating: bool,
    problems: _Problems,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    us: list[int] = []
    ms: list[int] = []
    rs: list[float] = []
    ts: list[int] = []
    lines: list[int] = []
    sep_name = _SEP_NAMES.get(sep, repr(sep))
    for k, raw in enumerate(chunk.split(b"\n")):
        lineno = first_line + k
        try:
            line = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            problems.add(file, lineno, f"bad encoding (not {encoding}): byte {raw[exc.start]:#04x}")
            continue
        parts = line.split(sep)
        if len(parts) != 4:
            problems.add(file, lineno, f"expected 4 {sep_name}-separated fields, got {len(parts)}")
            continue
        u, m, r, t = (p.strip() for p in parts)
        bad = next(
            (
                f"{what} {value!r} is not a non-negative integer"
                for what, value in (("user id", u), ("movie id", m), ("timestamp", t))
                if not _INT.fullmatch(value)
            ),
            None,
        )
        if bad is None and not (_INT if int_rating else _RATING).fullmatch(r):
            bad = f"rating {r!r} is not a {'whole' if int_rating else 'decimal'} number"
        if bad is not None:
            problems.add(file, lineno, bad)
            continue
        us.append(int(u))
        ms.append(int(m))
        rs.append(float(r))
        ts.append(int(t))
        lines.append(lineno)
    return (
        np.array(us, dtype=np.int64),
        np.array(ms, dtype=np.int64),
        np.array(rs, dtype=np.float64),
        np.array(ts, dtype=np.int64),
        np.array(lines, dtype=np.int64),
    )


def _body(data: bytes) -> bytes:
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    return data.rstrip(b"\n")


def _read_ratings(
    data: bytes,
    file: str,
    *,
    sep: str,
    header: str | None,
    encoding: str,
    half_stars: bool,
    movie_ids: set[int] | None,
    user_ids: set[int] | None,
    problems: _Problems,
) -> Interactions:
    body = _body(data)
    line0 = 1
    if header is not None:
        first, _, body = body.partition(b"\n")
        if first.decode("utf-8", "replace").strip() != header:
            raise DataFormatError(file, 1, f"expected the header {header!r}, got {first[:80]!r}")
        line0 = 2
    cols = _Columns()
    for first_line, chunk in _iter_chunks(body):
        fast = _fast_chunk(chunk, sep, encoding, int_rating=not half_stars)
        if fast is not None:
            n = len(fast[0])
            cols.add(*fast, np.arange(line0 + first_line, line0 + first_line + n, dtype=np.int64))
        else:
            u, m, r, t, lines = _slow_chunk(
                chunk, line0 + first_line, file, sep, encoding, not half_stars, problems
            )
            cols.add(u, m, r, t, lines)
    u, m, r, t, lines = cols.arrays()

    keep = np.ones(len(u), dtype=bool)

    def reject(mask: np.ndarray, message: Callable[[int], str]) -> None:
        mask = mask & keep
        if not mask.any():
            return
        for i in np.flatnonzero(mask):
            problems.add(file, int(lines[i]), message(int(i)))  # raises when strict
        keep[mask] = False

    reject((u <= 0) | (m <= 0), lambda i: f"ids must be positive, got user {u[i]} movie {m[i]}")
    if half_stars:
        bad = (r < RATING_MIN) | (r > RATING_MAX) | (r / RATING_STEP != np.round(r / RATING_STEP))
        scale = f"{RATING_MIN}..{RATING_MAX} in half stars"
    else:
        bad = (r < 1) | (r > 5) | (r != np.round(r))
        scale = "1..5"
    reject(bad, lambda i: f"rating {r[i]:g} is off the scale {scale}")
    if movie_ids is not None:
        known = np.fromiter(movie_ids, np.int64, len(movie_ids))
        reject(~np.isin(m, known), lambda i: f"unknown movie id {m[i]} (not in the movies file)")
    if user_ids is not None:
        known = np.fromiter(user_ids, np.int64, len(user_ids))
        reject(~np.isin(u, known), lambda i: f"unknown user id {u[i]} (not in the users file)")
    # duplicate (user, movie): every occurrence after the first
    idx = np.flatnonzero(keep)
    if idx.size:
        key = u[idx] * (int(m.max()) + 1) + m[idx]
        order = np.argsort(key, kind="stable")
        dup_sorted = np.zeros(idx.size, dtype=bool)
        dup_sorted[1:] = key[order][1:] == key[order][:-1]
        dup = np.zeros(len(u), dtype=bool)
        dup[idx[order[dup_sorted]]] = True
        reject(dup, lambda i: f"duplicate rating of movie {m[i]} by user {u[i]}")
    if not keep.all():
        u, m, r, t = u[keep], m[keep], r[keep], t[keep]
    return Interactions(u, m, r.astype(np.float32), t)


# ---------------------------------------------------------------------------------------------
# movies and users


def split_title(raw: str) -> tuple[str, int | None]:
    """'Toy Story (1995)' -> ('Toy Story', 1995); 'Babylon 5' -> ('Babylon 5', None)."""
    raw = raw.strip()
    match = _YEAR.search(raw)
    if match is None or match.start() == 0:
        return raw, None
    return raw[: match.start()].rstrip(), int(match.group(1))


def _decode_lines(data: bytes, file: str, encodings: tuple[str, ...]) -> list[str]:
    body = _body(data)
    start = 0
    for enc in encodings:
        try:
            return body.decode(enc).split("\n") if body else []
        except UnicodeDecodeError as exc:
            start = exc.start
    line = body.count(b"\n", 0, start) + 1
    raise DataFormatError(file, line, f"bad encoding (not {' or '.join(encodings)})")


def _fields(
    data: bytes, file: str, encodings: tuple[str, ...], sep: str, n_fields: int, problems: _Problems
) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each line of ``file`` with exactly ``n_fields`` ``sep``-separated
    fields; any other line is a problem, skipped."""
    for lineno, line in enumerate(_decode_lines(data, file, encodings), 1):
        parts = line.split(sep)
        if len(parts) != n_fields:
            problems.add(file, lineno, f"expected {n_fields} {sep!r}-separated fields, got {len(parts)}")
            continue
        yield lineno, parts


class _IdCheck:
    def __init__(self, file: str, what: str, problems: _Problems) -> None:
        self.seen: set[int] = set()
        self.file, self.what, self.problems = file, what, problems

    def parse(self, value: str, lineno: int) -> int | None:
        value = value.strip()
        if not _INT.fullmatch(value) or int(value) <= 0:
            self.problems.add(self.file, lineno, f"{self.what} id {value!r} is not a positive integer")
            return None
        i = int(value)
        if i in self.seen:
            self.problems.add(self.file, lineno, f"duplicate {self.what} id {i}")
            return None
        self.seen.add(i)
        return i


def _read_100k_genres(data: bytes) -> list[str]:
    names: list[tuple[int, str]] = []
    for lineno, line in enumerate(_decode_lines(data, "u.genre", ("latin-1",)), 1):
        if not line.strip():
            continue
        name, sep, idx = line.partition("|")
        if not sep or not _INT.fullmatch(idx.strip()):
            raise DataFormatError("u.genre", lineno, "expected 'name|index'")
        names.append((int(idx), name))
    names.sort()
    if [i for i, _ in names] != list(range(len(names))):
        raise DataFormatError("u.genre", None, "genre indexes are not 0..n-1")
    return [n for _, n in names]


def _read_100k_movies(data: bytes, genre_names: list[str], problems: _Problems) -> list[Movie]:
    file = "u.item"
    ids = _IdCheck(file, "movie", problems)
    n_fields = 5 + len(genre_names)
    movies: list[Movie] = []
    for lineno, parts in _fields(data, file, ("latin-1",), "|", n_fields, problems):
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            problems.add(file, lineno, "genre flags must be 0 or 1")
            continue
        movie_id = ids.parse(parts[0], lineno)
        if movie_id is None:
            continue
        title, year = split_title(parts[1])
        if year is None:
            date = re.fullmatch(r"\d{2}-[A-Za-z]{3}-(\d{4})", parts[2].strip())
            year = int(date.group(1)) if date else None
        genres = tuple(g for g, f in zip(genre_names, flags, strict=True) if f == "1" and g not in NO_GENRE)
        movies.append(Movie(movie_id, title, year, genres))
    return movies


def _read_100k_users(data: bytes, problems: _Problems) -> list[User]:
    file = "u.user"
    ids = _IdCheck(file, "user", problems)
    users: list[User] = []
    for lineno, parts in _fields(data, file, ("latin-1",), "|", 5, problems):
        uid, age, gender, occupation, zip_code = (p.strip() for p in parts)
        if not _INT.fullmatch(age) or not 0 < int(age) < 130:
            problems.add(file, lineno, f"age {age!r} is not a plausible age")
            continue
        if gender not in GENDERS:
            problems.add(file, lineno, f"gender {gender!r} is not F or M")
            continue
        user_id = ids.parse(uid, lineno)
        if user_id is None:
            continue
        users.append(User(user_id, gender, int(age), occupation.lower() or None, zip_code or None))
    return users


def _read_dat_movies(data: bytes, problems: _Problems) -> list[Movie]:
    file = "movies.dat"
    ids = _IdCheck(file, "movie", problems)
    movies: list[Movie] = []
    for lineno, parts in _fields(data, file, ("utf-8", "latin-1"), "::", 3, problems):
        movie_id = ids.parse(parts[0], lineno)
        if movie_id is None:
            continue
        title, year = split_title(parts[1])
        genres = tuple(g for g in parts[2].strip().split("|") if g and g not in NO_GENRE)
        movies.append(Movie(movie_id, title, year, genres))
    return movies


def _read_dat_users(data: bytes, problems: _Problems) -> list[User]:
    file = "users.dat"
    ids = _IdCheck(file, "user", problems)
    users: list[User] = []
    for lineno, parts in _fields(data, file, ("utf-8", "latin-1"), "::", 5, problems):
        uid, gender, age, occ, zip_code = (p.strip() for p in parts)
        if gender not in GENDERS:
            problems.add(file, lineno, f"gender {gender!r} is not F or M")
            continue
        if not _INT.fullmatch(age) or int(age) not in ML1M_AGES:
            problems.add(file, lineno, f"age code {age!r} is not one of {ML1M_AGES}")
            continue
        if not _INT.fullmatch(occ) or not 0 <= int(occ) < len(ML1M_OCCUPATIONS):
            problems.add(file, lineno, f"occupation code {occ!r} is not 0..{len(ML1M_OCCUPATIONS) - 1}")
            continue
        user_id = ids.parse(uid, lineno)
        if user_id is None:
            continue
        users.append(User(user_id, gender, int(age), ML1M_OCCUPATIONS[int(occ)], zip_code or None))
    return users


def _csv_rows(data: bytes, file: str, header: list[str]) -> list[tuple[int, list[str]]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(file, data.count(b"\n", 0, exc.start) + 1, "bad encoding (not utf-8)") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        first = next(reader, None)
        if first != header:
            raise DataFormatError(file, 1, f"expected the header {','.join(header)!r}, got {first!r}")
        return [(reader.line_num, row) for row in reader if row]
    except csv.Error as exc:
        raise DataFormatError(file, reader.line_num, f"bad CSV: {exc}") from None


def _read_csv_movies(data: bytes, problems: _Problems) -> list[Movie]:
    file = "movies.csv"
    ids = _IdCheck(file, "movie", problems)
    movies: list[Movie] = []
    for lineno, row in _csv_rows(data, file, ["movieId", "title", "genres"]):
        if len(row) != 3:
            problems.add(file, lineno, f"expected 3 comma-separated fields, got {len(row)}")
            continue
        movie_id = ids.parse(row[0], lineno)
        if movie_id is None:
            continue
        title, year = split_title(row[1])
        genres = tuple(g for g in row[2].strip().split("|") if g and g not in NO_GENRE)
        movies.append(Movie(movie_id, title, year, genres))
    return movies


def _apply_links(data: bytes, movies: list[Movie], problems: _Problems) -> list[Movie]:
    file = "links.csv"
    by_id = {m.movie_id: i for i, m in enumerate(movies)}
    out = list(movies)
    ids = _IdCheck(file, "movie", problems)
    for lineno, row in _csv_rows(data, file, ["movieId", "imdbId", "tmdbId"]):
        if len(row) != 3:
            problems.add(file, lineno, f"expected 3 comma-separated fields, got {len(row)}")
            continue
        movie_id = ids.parse(row[0], lineno)
        if movie_id is None:
            continue
        imdb, tmdb = row[1].strip(), row[2].strip()
        if (imdb and not _INT.fullmatch(imdb)) or (tmdb and not _INT.fullmatch(tmdb)):
            problems.add(file, lineno, f"imdbId {imdb!r} / tmdbId {tmdb!r} are not integers")
            continue
        if movie_id not in by_id:
            problems.add(file, lineno, f"unknown movie id {movie_id} (not in movies.csv)")
            continue
        i = by_id[movie_id]
        m = out[i]
        out[i] = Movie(m.movie_id, m.title, m.year, m.genres, f"tt{imdb}" if imdb else None,
                       int(tmdb) if tmdb else None)  # fmt: skip
    return out


def _vocabulary(movies: list[Movie], order: list[str] | None = None) -> tuple[str, ...]:
    seen = {g for m in movies for g in m.genres}
    if order is not None:
        head = [g for g in order if g not in NO_GENRE]
        return tuple(head + sorted(seen - set(head)))
    return tuple(sorted(seen))


# ---------------------------------------------------------------------------------------------


def read_dataset(
    path: Path, *, name: str | None = None, lenient: bool = False, metadata_only: bool = False
) -> Dataset:
    """Read a MovieLens zip or folder (format auto-detected). See ``load_dataset``."""
    src = _Source(path)
    problems = _Problems(lenient)
    fmt = src.format
    try:
        holdout_of = read_marker(src)
        users: list[User] = []
        if fmt == "100k":
            genre_order = _read_100k_genres(src.read("u.genre")) if src.has("u.genre") else None
            if genre_order is None:
                raise DataFormatError("u.genre", None, "missing (needed to read u.item's genre flags)")
            movies = _read_100k_movies(_need(src, "u.item"), genre_order, problems)
            if src.has("u.user"):
                users = _read_100k_users(src.read("u.user"), problems)
            genres = _vocabulary(movies, genre_order)
            sep, header, encoding, half = "\t", None, "latin-1", False
        elif fmt == "1m":
            movies = _read_dat_movies(_need(src, "movies.dat"), problems)
            if src.has("users.dat"):
                users = _read_dat_users(src.read("users.dat"), problems)
            genres = _vocabulary(movies)
            # ml-10m has no users.dat and half-star ratings
            sep, header, encoding, half = "::", None, "latin-1", not src.has("users.dat")
        else:
            movies = _read_csv_movies(_need(src, "movies.csv"), problems)
            if src.has("links.csv"):
                movies = _apply_links(src.read("links.csv"), movies, problems)
            genres = _vocabulary(movies)
            sep, header, encoding, half = ",", "userId,movieId,rating,timestamp", "utf-8", True
        rating_file = _RATINGS_FILE[fmt]
        if metadata_only:
            inter = Interactions()
        elif not src.has(rating_file):
            raise DataFormatError(
                rating_file,
                None,
                f"missing in {path}: this data set holds no ratings "
                "(load with metadata_only=True, or --metadata-only, to read only movies and users)",
            )
        else:
            inter = _read_ratings(
                src.read(rating_file),
                rating_file,
                sep=sep,
                header=header,
                encoding=encoding,
                half_stars=half,
                movie_ids={m.movie_id for m in movies},
                user_ids={u.user_id for u in users} if users else None,
                problems=problems,
            )
    finally:
        src.close()
    problems.warn(str(path))
    if name is None:
        name = path.stem if path.is_file() else path.name
    return Dataset(
        name=name,
        format=fmt,
        movies=movies,
        users=users,
        interactions=inter,
        source=str(path),
        sha256=src.sha256,
        genres=genres,
        skipped_rows=problems.count,
        holdout_of=holdout_of,
    )


def read_marker(src: _Source) -> dict[str, Any] | None:
    """The parsed holdout marker (``recsys-holdout.json``) of ``src``, or None without one."""
    if not src.has(HOLDOUT_MARKER):
        return None
    try:
        marker = json.loads(src.read(HOLDOUT_MARKER).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(HOLDOUT_MARKER, None, f"not valid JSON: {exc}") from None
    if not isinstance(marker, dict):
        raise DataFormatError(HOLDOUT_MARKER, None, "expected a JSON object")
    return marker


def _need(src: _Source, name: str) -> bytes:
    if not src.has(name):
        raise DataFormatError(name, None, f"missing in {src.path}")
    return src.read(name)
