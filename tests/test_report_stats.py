"""The one mean ± std (embedlab.report.mean_std) that the report and the benchmark scripts use."""

import math

import pytest

from embedlab.report import format_mean_std, mean_std


def test_mean_std_is_the_sample_std_over_the_known_values():
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))  # n - 1, not n (0.816)
    assert mean_std([0.5, math.nan]) == (0.5, 0.0)  # one run: no spread
    assert all(math.isnan(v) for v in mean_std([]))
    assert format_mean_std(*mean_std([0.81, 0.83]), digits=3) == "0.820 ± 0.014"
    assert format_mean_std(math.nan, math.nan) == ""
