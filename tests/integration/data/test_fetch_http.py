"""fetch against a local HTTP server serving a generated zip."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from recsys_data import ChecksumMismatch, UnverifiedDownload, fetch, load_dataset
from recsys_data.synthetic import generate


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    root = tmp_path_factory.mktemp("www")
    zip_path = generate(root / "ml-syn", fmt="100k", n_users=15, n_movies=25, n_ratings=120, seed=4, zip=True)
    sha = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", sha
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch_verifies_and_installs(served: tuple[str, str], tmp_path: Path) -> None:
    base, sha = served
    path = fetch("ml-syn", tmp_path / "dest", base_url=base, sha256=sha, progress=False)
    assert path == tmp_path / "dest" / "ml-syn.zip"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert sorted(p.name for p in path.parent.iterdir()) == ["ml-syn.zip"]  # no temp file left
    assert len(load_dataset(path).interactions) == 120
    # already there and verified: no download (the server is not even asked)
    assert fetch("ml-syn", tmp_path / "dest", base_url="http://127.0.0.1:9", sha256=sha) == path


def test_checksum_mismatch_leaves_nothing(served: tuple[str, str], tmp_path: Path) -> None:
    base, sha = served
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatch) as info:
        fetch("ml-syn", tmp_path, base_url=base, sha256=wrong, progress=False)
    assert info.value.expected == wrong and info.value.got == sha
    assert wrong in str(info.value) and sha in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_known_name_checked_against_registry(served: tuple[str, str], tmp_path: Path) -> None:
    base, _ = served
    # the server has no ml-100k.zip: the HTTP error propagates and nothing is left behind
    with pytest.raises(OSError):
        fetch("ml-100k", tmp_path, base_url=base, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unverified_needs_the_insecure_flag(served: tuple[str, str], tmp_path: Path) -> None:
    base, sha = served
    with pytest.raises(UnverifiedDownload):
        fetch("ml-syn", tmp_path, base_url=base, progress=False)
    path = fetch("ml-syn", tmp_path, base_url=base, progress=False, insecure_skip_checksum=True)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
