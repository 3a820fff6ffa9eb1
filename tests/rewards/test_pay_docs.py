"""The worked example in docs/rewards.md is what the settlement maths computes."""
from __future__ import annotations

import re
from pathlib import Path
from statistics import NormalDist

import pytest

from rewards.weighting import settle_epoch_math

DOC = Path(__file__).resolve().parents[2] / "docs" / "rewards.md"
TOKEN = 10**6


def _example_rows() -> list[list[str]]:
    text = DOC.read_text()
    table = text[text.index("| expert | judgments |"):].split("\n\n", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_the_worked_example_matches_settle_epoch_math() -> None:
    rows = _example_rows()
    assert [r[0].split()[0] for r in rows] == ["Ana", "Ben", "Cy"]
    matches, compared = zip(*(map(int, re.findall(r"\d+", r[2])) for r in rows))
    gold_correct, gold_n = zip(*(map(int, re.findall(r"\d+", r[3])) for r in rows))
    maths = settle_epoch_math(
        reward_per_judgment=2 * TOKEN, available=10**12, n=[int(r[1]) for r in rows], matches=matches,
        n_compared=compared, f_rater=[0.5] * 3, f_consensus=[0.5] * 3, gold_correct=gold_correct, gold_n=gold_n,
        stake=[int(r[4]) * TOKEN for r in rows], s_half=TOKEN, z=NormalDist().inv_cdf(0.875),
    )
    for k, row in enumerate(rows):
        assert float(row[5]) == pytest.approx(maths.agreement[k], abs=5e-4)
        assert float(row[6]) == pytest.approx(maths.quality[k], abs=5e-4)
        assert float(row[7]) == pytest.approx(maths.quality_low[k], abs=5e-4)
        assert float(row[8]) == pytest.approx(maths.stake_multiplier[k], abs=5e-3)
        assert float(row[9]) == pytest.approx(maths.weight[k], abs=5e-3)
        assert round(float(row[10]) * TOKEN) == maths.payouts[k]
    assert maths.budget == 240 * TOKEN and maths.dust == 1
