"""The store's SQL: one statement per ``<name>.sql`` file in this package, loaded by name.

``statement(name)`` reads ``<name>.sql`` (package data, through importlib.resources) and is
called at module level by the store's modules, so a missing or empty file fails at import, not
at the first query. A file starts with ``--`` comment lines saying what the statement does and
its ``$n`` parameters; they are left out of the text sent to the server. ``{{fragment}}``
includes ``_fragment.sql`` (text shared by several statements, such as the movie columns and
the filter conditions); a fragment includes nothing. ``check_all_loaded()`` fails on a file that
no module loads (a leftover after a rename).
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_INCLUDE = re.compile(r"\{\{([a-z][a-z0-9_]*)\}\}")

_loaded: set[str] = set()  # file stems read so far ("_movie_filter" for a fragment)


class SqlFileError(RuntimeError):
    """A statement or fragment file is missing, empty or malformed."""


def _read(stem: str) -> str:
    path = resources.files(__name__).joinpath(f"{stem}.sql")
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise SqlFileError(f"no SQL file {stem}.sql in {__name__}") from exc
    lines = text.strip().splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)  # the header comment
    body = "\n".join(lines).strip()
    if not body:
        raise SqlFileError(f"{stem}.sql in {__name__} holds no SQL")
    _loaded.add(stem)
    return body


def _include(text: str, match: re.Match[str]) -> str:
    """The fragment named by ``match``, its later lines indented to where it is included."""
    body = _read(f"_{match.group(1)}")
    if "{{" in body:
        raise SqlFileError(f"fragment _{match.group(1)}.sql includes another one")
    column = match.start() - (text.rfind("\n", 0, match.start()) + 1)
    return body.replace("\n", "\n" + " " * column)


def statement(name: str) -> str:
    """The text of ``<name>.sql``, fragments included. Raises SqlFileError."""
    if not _NAME.match(name):
        raise SqlFileError(f"invalid statement name {name!r} (lower case, digits, _; no leading _)")
    body = _read(name)
    text = _INCLUDE.sub(lambda m: _include(body, m), body)
    if "{{" in text or "}}" in text:
        raise SqlFileError(f"{name}.sql: malformed fragment reference")
    return text


def check_all_loaded() -> None:
    """Raise SqlFileError if a ``.sql`` file here was never loaded (call after every loader)."""
    present = {
        entry.name.removesuffix(".sql")
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".sql")
    }
    unused = sorted(present - _loaded)
    if unused:
        raise SqlFileError(f"SQL files that no module loads: {', '.join(f'{n}.sql' for n in unused)}")
