"""Token usage folded into groups, and its cost from configured prices."""

from __future__ import annotations

import pytest

from batchwatch.api.results import usage_groups
from batchwatch.config import PriceSettings

SMALL = PriceSettings(input_per_million=0.10, output_per_million=0.30, batch_discount=0.5)


def test_cost_is_list_price_less_the_batch_discount_summed_over_models() -> None:
    rows = [
        ("search", "small", 2, 100, 1_000_000, 2_000_000, 3_000_000),
        ("search", "small", 1, 10, 1_000_000, 0, 1_000_000),
    ]
    (group,) = usage_groups(rows, {"small": SMALL})
    assert (group["key"], group["jobs"], group["requests"]) == ("search", 3, 110)
    assert group["prompt_tokens"] == 2_000_000
    # (2 M input x 0.10 + 2 M output x 0.30) per million, half price for batches
    assert group["cost"] == pytest.approx((0.2 + 0.6) * 0.5)


def test_a_group_with_a_model_without_price_has_no_cost() -> None:
    rows = [
        ("ads", "small", 1, 10, 100, 100, 200),
        ("ads", "large", 1, 10, 100, 100, 200),
        ("search", "small", 1, 10, 100, 100, 200),
    ]
    groups = {g["key"]: g for g in usage_groups(rows, {"small": SMALL})}
    assert groups["ads"]["cost"] is None
    assert groups["ads"]["total_tokens"] == 400
    assert groups["search"]["cost"] == pytest.approx((100 * 0.1 + 100 * 0.3) / 1e6 * 0.5)
