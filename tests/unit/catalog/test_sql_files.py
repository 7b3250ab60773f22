"""The catalog store's SQL files (issue #17 item 4): loaded by name, failing fast when wrong."""

from __future__ import annotations

import pytest
from recsys_catalog.store import sql
from recsys_catalog.store.sql import SqlFileError, statement


def test_every_sql_file_is_loaded_by_some_module() -> None:
    import recsys_catalog.store  # noqa: F401  (imports every store module, each loads its statements)

    sql.check_all_loaded()


def test_a_statement_is_its_file_without_the_header_comment_and_with_fragments_included() -> None:
    text = statement("history_columns")
    assert not text.lstrip().startswith("--")
    assert "{{" not in text and "}}" not in text
    assert "$1" in text


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_such_statement", "no SQL file no_such_statement.sql"),
        ("_movie_filter", "invalid statement name"),
        ("Bad-Name", "invalid statement name"),
    ],
)
def test_a_wrong_name_fails_with_the_reason(name: str, message: str) -> None:
    with pytest.raises(SqlFileError, match=message):
        statement(name)
