"""``python -m recsys_embedder``, ``python -m recsys_embedder.training`` and ``python -m
recsys_data``: the module entry points the release pipeline's Jobs run (deploy/k8s/components/
pipeline). No arguments (or ``serve``) serves; anything else is the ``recsys`` subcommand's
parser and function."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import recsys_embedder.__main__ as embedder_main


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(embedder_main, "run", lambda _fn, service: calls.append(service))
    return calls


@pytest.mark.parametrize("argv", [[], ["serve"]])
def test_no_arguments_or_serve_serves(served: list[str], argv: list[str]) -> None:
    assert embedder_main.main(argv) == 0
    assert served == ["embedder"]


def test_recsys_embedder_serve_serves_whatever_sys_argv_holds(
    served: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`recsys embedder serve` calls main() with the CLI's own sys.argv: it must still serve."""
    from recsys_embedder import cli

    monkeypatch.setattr("sys.argv", ["recsys", "embedder", "serve"])
    assert cli._serve(argparse.Namespace()) == 0
    assert served == ["embedder"]


def test_export_runs_the_export_subcommand(
    served: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        embedder_main.main(["export", "--artifact-dir", str(tmp_path / "none"), "--out", str(tmp_path)]) == 1
    )
    assert "recsys embedder export:" in capsys.readouterr().err
    assert not served


def test_unknown_subcommand_is_an_argparse_error(served: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        embedder_main.main(["nonsense"])
    assert exc.value.code == 2 and not served


def test_training_module_has_the_train_flags() -> None:
    pytest.importorskip("dgl", reason="the train extra (DGL) is not installed")
    from recsys_embedder.training import cli
    from recsys_embedder.training.__main__ import build_parser

    ns = build_parser().parse_args(["train", "--data", "ml-100k", "--out", "/artifacts", "--device", "cpu"])
    assert ns.func is cli.run and ns.data == "ml-100k" and ns.out == "/artifacts"


def test_data_module_fetch_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    from recsys_data.__main__ import build_parser, main

    ns = build_parser().parse_args(["data", "fetch", "ml-100k", "--dest", "/data"])
    assert ns.data_command == "fetch" and ns.dest == Path("/data")
    assert main(["list"]) == 0
    assert "ml-100k" in capsys.readouterr().out
