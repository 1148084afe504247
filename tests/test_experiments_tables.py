"""netgraph.experiments.tables: spreads and paired differences checked against numpy/scipy,
and the CSV / markdown files read back."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from scipy import stats

from netgraph.errors import NetgraphError
from netgraph.experiments.tables import csv_text, fmt, markdown_table, mean_std, paired_differences, pm, write_table


def test_mean_std_matches_numpy_on_the_finite_values():
    values = [0.91, None, 0.87, math.nan, 0.95, math.inf, 0.90]
    finite = np.array([0.91, 0.87, 0.95, 0.90])
    mean, std, n = mean_std(values)
    assert n == 4
    assert mean == pytest.approx(finite.mean(), abs=1e-15)
    assert std == pytest.approx(finite.std(ddof=1), abs=1e-15)  # the sample std, not numpy's default ddof=0
    assert mean_std([0.5]) == (0.5, 0.0, 1)
    empty = mean_std([None, math.nan])
    assert math.isnan(empty[0]) and math.isnan(empty[1]) and empty[2] == 0


def test_pm_formats_scaled_mean_and_std():
    values = [0.912, 0.871, 0.953]
    expected = f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1):.1f}"
    assert pm(values) == expected == "91.2 ± 4.1"
    assert pm([2.0, 4.0], scale=1, digits=2) == "3.00 ± 1.41"
    assert pm([None]) == "–"


def _rows():
    """Three arms x four seeds; arm b lacks seed 3, arm a has no value at seed 2."""
    acc = {"a": [0.90, 0.82, None, 0.88], "b": [0.85, 0.80, 0.79], "c": [0.1, 0.2, 0.3, 0.4]}
    rows = [{"method": m, "level": 100.0, "seed": s, "acc": v} for m, vs in acc.items() for s, v in enumerate(vs)]
    rows.append({"method": "a", "level": 10.0, "seed": 0, "acc": 0.99})  # another level: not in the arms below
    return rows


def test_paired_differences_match_numpy_and_a_paired_t_test():
    rows = _rows()
    d = paired_differences(rows, "acc", {"method": "a", "level": 100.0}, {"method": "b", "level": 100.0})
    a, b = np.array([0.90, 0.82]), np.array([0.85, 0.80])  # seeds 0 and 1: the only complete pairs
    assert d.differences == pytest.approx({0: 0.05, 1: 0.02})
    assert d.unpaired == [2, 3]
    assert d.n == 2
    assert d.mean == pytest.approx(np.mean(a - b))
    assert d.std == pytest.approx(np.std(a - b, ddof=1))
    assert d.sem == pytest.approx(stats.sem(a - b))
    assert d.mean / d.sem == pytest.approx(stats.ttest_rel(a, b).statistic)  # the paired t statistic
    assert d.text() == f"+{100 * np.mean(a - b):.1f} ± {100 * stats.sem(a - b):.1f} (s.e., n=2)"


def test_paired_differences_with_four_pairs_and_the_reverse_order():
    rows = _rows()
    forward = paired_differences(rows, "acc", {"method": "c"}, {"method": "b"})
    backward = paired_differences(rows, "acc", {"method": "b"}, {"method": "c"})
    c, b = np.array([0.1, 0.2, 0.3]), np.array([0.85, 0.80, 0.79])
    assert forward.n == 3 and forward.unpaired == [3]
    assert forward.mean == pytest.approx(np.mean(c - b)) and backward.mean == pytest.approx(-forward.mean)
    assert forward.sem == pytest.approx(stats.sem(c - b)) and backward.sem == pytest.approx(forward.sem)
    assert forward.text(digits=2).startswith(f"{100 * np.mean(c - b):+.2f} ± ")


def test_one_pair_has_no_spread():
    rows = [{"m": "a", "seed": 0, "x": 3.0}, {"m": "b", "seed": 0, "x": 1.0}]
    d = paired_differences(rows, "x", {"m": "a"}, {"m": "b"})
    assert d.mean == 2.0 and math.isnan(d.std) and math.isnan(d.sem)
    assert d.text(scale=1) == "+2.0 (n=1, no s.e.)"


@pytest.mark.parametrize(
    ("key", "arm_a", "message"),
    [
        ("acc", {"method": "a"}, "several rows with seed 0"),  # arm a spans two levels
        ("acc", {"method": "nosuch"}, "matches no row"),
        ("accuracy", {"method": "a", "level": 100.0}, "no row has the column 'accuracy'"),
    ],
)
def test_paired_differences_refuse_ambiguous_or_empty_arms(key, arm_a, message):
    with pytest.raises(NetgraphError, match=message):
        paired_differences(_rows(), key, arm_a, {"method": "b"})


def test_csv_text_reads_back_with_the_csv_module():
    rows = [{"name": "a", "value": 1.5, "layers": ["x", "y"], "none": None, "flag": True},
            {"name": "b", "value": 2}]
    text = csv_text(rows, ["name", "value", "layers", "none", "flag"])
    assert "\r" not in text
    back = list(csv.DictReader(io.StringIO(text)))
    assert back[0] == {"name": "a", "value": "1.5", "layers": '["x", "y"]', "none": "", "flag": "True"}
    assert json.loads(back[0]["layers"]) == ["x", "y"]
    assert back[1] == {"name": "b", "value": "2", "layers": "", "none": "", "flag": ""}


def test_markdown_table_and_write_table(tmp_path):
    rows = [{"method": "magnitude", "acc": "91.2"}, {"method": "connect"}]
    assert markdown_table(rows) == "| method | acc |\n|---|---|\n| magnitude | 91.2 |\n| connect |  |"
    assert markdown_table([], ["a"]) == "| a |\n|---|"
    md = write_table(tmp_path, "t", [{"x": 1, "y": None}], md_rows=[{"x": "one"}], md_columns=["x"])
    assert md == "| x |\n|---|\n| one |\n" == (tmp_path / "t.md").read_text()
    assert (tmp_path / "t.csv").read_text() == "x,y\n1,\n"


def test_fmt_cells():
    assert [fmt(None), fmt(True), fmt(0.123456), fmt(-math.inf), fmt(math.nan), fmt(7)] == \
        ["–", "yes", "0.123", "-inf", "nan", "7"]
