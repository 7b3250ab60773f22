"""bench/profile_services.py: the py-spy summary counts self and inclusive samples right."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _module():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(REPO / "bench"))
    spec = importlib.util.spec_from_file_location("profile_services", REPO / "bench" / "profile_services.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_summarise_self_and_inclusive(tmp_path: Path) -> None:
    raw = tmp_path / "gateway.txt"
    raw.write_text(
        "main (x.py:1);recommend (recsys_gateway/service.py:10);_closest (recsys_gateway/service.py:470) 6\n"
        "main (x.py:1);recommend (recsys_gateway/service.py:10) 3\n"
        "Thread.run (threading.py:982) 11\n"
        "garbage line\n"
    )
    total, top_self, top_incl = _module().summarise(raw, 5)
    assert total == 20
    assert top_self[0] == ("Thread.run (threading.py:982)", 11)
    assert ("_closest (recsys_gateway/service.py:470)", 6) in top_self
    incl = dict(top_incl)
    assert incl["recommend (recsys_gateway/service.py:10)"] == 9  # its own 3 plus _closest's 6
    assert "main (x.py:1)" not in incl  # only project and library frames
