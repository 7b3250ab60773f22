"""The training-cost estimate `recsys up` prints before it trains (recsys_embedder.training.cost),
and its prompt rule (recsys_tools.stack.confirm_training)."""

from __future__ import annotations

import pytest
from recsys_embedder.training import cost as C


def test_the_estimate_reproduces_its_measured_points() -> None:
    for movies, rate in C.FULL_POINTS:
        assert C.full_events_per_s(movies) == pytest.approx(rate, rel=1e-9)
    assert C.peak_gib(100_000) == pytest.approx(0.61)
    small = C.estimate(100_000, 1_682)
    assert small.epoch_s == pytest.approx(100_000 / 9_134, rel=1e-6)
    assert small.total_s == pytest.approx(2 * C.EPOCHS * small.epoch_s)


def test_full_softmax_cost_grows_with_the_catalog_and_sampled_does_not() -> None:
    a, b = C.estimate(2_000_000, 10_000), C.estimate(2_000_000, 60_000)
    assert b.events_per_s < a.events_per_s and b.total_s > a.total_s
    for movies, rate in C.SAMPLED_POINTS:
        assert C.sampled_events_per_s(movies) == pytest.approx(rate, rel=1e-9)
    # past the last measured catalog the sampled rate stays put; the full one keeps falling
    sa, sb = C.estimate(2_000_000, 60_000, "sampled"), C.estimate(2_000_000, 600_000, "sampled")
    assert sa.events_per_s == sb.events_per_s
    assert C.estimate(2_000_000, 600_000).events_per_s < C.estimate(2_000_000, 60_000).events_per_s
    # the 25M shape: hours with the full softmax on 2 cores, memory far above a laptop's
    big = C.estimate(25_000_000, 62_000)
    assert big.total_s > 10 * 3600 and big.peak_gib > 50
    assert "25,000,000 ratings" in big.summary() and "GiB" in big.summary()
    with pytest.raises(ValueError):
        C.estimate(10, 0)
    with pytest.raises(ValueError):
        C.estimate(10, 10, "bpr")


def test_up_asks_only_on_a_terminal_for_a_long_training(capsys: pytest.CaptureFixture[str]) -> None:
    from recsys_tools import stack

    small = stack.training_cost(100_000, 1_682, "")
    big = stack.training_cost(25_000_000, 62_000, "--epochs 15")
    assert stack.training_cost(25_000_000, 62_000, "--loss sampled").loss == "sampled"

    def never(_prompt: str) -> str:
        raise AssertionError("asked")

    assert stack.confirm_training(small, yes=False, interactive=True, ask=never)  # short: no question
    assert stack.confirm_training(big, yes=True, interactive=True, ask=never)  # --yes
    assert stack.confirm_training(big, yes=False, interactive=False, ask=never)  # CI: print, go on
    out = capsys.readouterr().out
    assert out.count("training will cost") == 3 and "not a terminal" in out
    assert not stack.confirm_training(big, yes=False, interactive=True, ask=lambda _p: "")
    assert stack.confirm_training(big, yes=False, interactive=True, ask=lambda _p: "y")
