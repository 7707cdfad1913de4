"""Tests for table-layout planning: salt split points and region skew."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.sinks.hbase.layout import region_of, salt_split_points, skew
from headwater.sinks.hbase.rowkey import RowKeyError, RowKeyTemplate

N_RECORDS = 10_000
N_CUSTOMERS = 10_000
ZIPF_S = 0.9


def _zipf_customer_ids(seed: int = 7, s: float = ZIPF_S) -> list[str]:
    """10k order events whose customer ids follow a Zipf law (customer k has weight 1 / k**s)."""
    rng = random.Random(seed)
    weights = [1 / rank**s for rank in range(1, N_CUSTOMERS + 1)]
    ranks = rng.choices(range(1, N_CUSTOMERS + 1), weights=weights, k=N_RECORDS)
    return [f"cust-{rank:06d}" for rank in ranks]


def _keys(template: str, customer_ids: list[str]) -> list[bytes]:
    parsed = RowKeyTemplate.parse(template)
    return [parsed.encode({"customer_id": cid, "order_id": i}) for i, cid in enumerate(customer_ids)]


def test_split_points_exact() -> None:
    assert salt_split_points(2) == [b"01"]
    assert salt_split_points(8) == [b"01", b"02", b"03", b"04", b"05", b"06", b"07"]
    points = salt_split_points(256)
    assert points[9:11] == [b"0a", b"0b"]
    assert points[-1] == b"ff"


@pytest.mark.parametrize("buckets", [2, 3, 8, 16, 17, 100, 255, 256])
def test_split_points_sorted_and_one_per_bucket_boundary(buckets: int) -> None:
    points = salt_split_points(buckets)
    assert len(points) == buckets - 1
    assert points == sorted(points)
    assert len(set(points)) == len(points)
    assert all(point.isascii() and point.decode().isprintable() for point in points)


@pytest.mark.parametrize("buckets", [0, 1, 257, True, 8.0])
def test_split_points_reject_bad_bucket_counts(buckets: object) -> None:
    with pytest.raises(RowKeyError) as info:
        salt_split_points(buckets)  # type: ignore[arg-type]
    assert str(info.value) == f"salt buckets must be an integer with 2 <= N <= 256, got {buckets!r}"


@settings(max_examples=100, deadline=None)
@given(st.text(), st.integers(2, 256))
def test_each_salt_bucket_starts_its_own_region(customer_id: str, buckets: int) -> None:
    template = RowKeyTemplate.parse(f"{{salt(customer_id, {buckets})}}|{{customer_id}}")
    key = template.encode({"customer_id": customer_id.replace("|", "")})
    assert region_of(key, salt_split_points(buckets)) == int(key[:2], 16)


def test_region_of_boundaries() -> None:
    points = [b"01", b"02"]
    assert region_of(b"", points) == 0
    assert region_of(b"00\xff", points) == 0
    assert region_of(b"01", points) == 1  # a split key is the first key of its region
    assert region_of(b"02", points) == 2
    assert region_of(b"\xff", points) == 2


def test_skew_report_values() -> None:
    report = skew(iter([b"00a", b"00b", b"01a", b"03z"]), [b"01", b"02", b"03"])
    assert report == {
        "regions": 4,
        "counts": [2, 1, 0, 1],
        "total": 4,
        "max": 2,
        "mean": 1.0,
        "max_mean_ratio": 2.0,
    }
    empty = skew([], [b"01"])
    assert empty["counts"] == [0, 0] and empty["max_mean_ratio"] == 0.0
    assert skew([b"x"], [])["counts"] == [1]


@pytest.mark.parametrize("points", [[b"02", b"01"], [b"01", b"01"], [b""]])
def test_skew_rejects_bad_split_points(points: list[bytes]) -> None:
    with pytest.raises(ValueError, match="split point"):
        skew([b"x"], points)


def test_salted_zipf_keys_spread_unsalted_keys_do_not() -> None:
    customer_ids = _zipf_customer_ids()
    points = salt_split_points(8)

    salted = skew(_keys("{salt(customer_id, 8)}|{customer_id}|{order_id:long}", customer_ids), points)
    assert salted["total"] == N_RECORDS
    assert salted["regions"] == 8
    assert min(salted["counts"]) > 0
    assert salted["mean"] == 1250.0
    assert salted["max_mean_ratio"] < 1.5

    unsalted_keys = _keys("{customer_id}|{order_id:long}", customer_ids)
    # An unsalted table is not pre-split: everything lands in region 0, the only one.
    assert skew(unsalted_keys, [])["counts"] == [N_RECORDS]
    # Even with the salted table's split points they pile into one region ('c' > '07': the last).
    unsalted = skew(unsalted_keys, points)
    assert unsalted["counts"] == [0] * 7 + [N_RECORDS]
    assert unsalted["max_mean_ratio"] == 8.0


@pytest.mark.parametrize("seed", range(5))
def test_salted_spread_holds_for_other_samples(seed: int) -> None:
    keys = _keys("{salt(customer_id, 8)}|{customer_id}|{order_id:long}", _zipf_customer_ids(seed))
    assert skew(keys, salt_split_points(8))["max_mean_ratio"] < 1.5


def test_salting_by_customer_cannot_split_one_hot_customer() -> None:
    """The limit of salting on the customer id: a customer's rows all share one bucket."""
    customer_ids = _zipf_customer_ids(s=1.2)
    hottest, hot_rows = Counter(customer_ids).most_common(1)[0]
    report = skew(_keys("{salt(customer_id, 8)}|{customer_id}|{order_id:long}", customer_ids), salt_split_points(8))
    assert hot_rows / N_RECORDS > 1.5 / 8  # one customer alone is more than 1.5x a fair share
    assert report["max"] >= hot_rows
    assert report["max_mean_ratio"] > 1.5
    assert hottest == "cust-000001"
