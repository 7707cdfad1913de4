"""Pure HBase table-layout planning: region split points for salted keys, and key skew per region.

A salted row key starts with its salt bucket as 2 hex digits (see
:func:`headwater.sinks.hbase.rowkey.salt_prefix`). Pre-splitting the table at the bucket prefixes gives
every bucket its own region from the start, so writes spread over all region servers.

Example:
    >>> salt_split_points(4)
    [b'01', b'02', b'03']
    >>> skew([b"00a", b"01b", b"02c", b"03d"], salt_split_points(4))["counts"]
    [1, 1, 1, 1]
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from typing import TypedDict

from headwater.sinks.hbase.rowkey import RowKeyError, salt_prefix

__all__ = ["SkewReport", "region_of", "salt_split_points", "skew"]


class SkewReport(TypedDict):
    """How keys spread over regions. ``max_mean_ratio`` is 1.0 for a perfect spread."""

    regions: int
    counts: list[int]
    total: int
    max: int
    mean: float
    max_mean_ratio: float


def salt_split_points(buckets: int) -> list[bytes]:
    """Region split keys for a table salted into ``buckets`` buckets: prefixes of buckets 1..N-1.

    Region 0 holds bucket ``00``; region ``i`` starts at the prefix of bucket ``i``.

    Raises:
        RowKeyError: unless ``2 <= buckets <= 256`` (the range a ``salt()`` part accepts).

    Example:
        >>> salt_split_points(3)
        [b'01', b'02']
    """
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 2 <= buckets <= 256:
        raise RowKeyError(f"salt buckets must be an integer with 2 <= N <= 256, got {buckets!r}")
    return [salt_prefix(bucket) for bucket in range(1, buckets)]


def _check_split_points(split_points: list[bytes]) -> None:
    for before, after in itertools.pairwise(split_points):
        if not before < after:
            raise ValueError(f"split points must be strictly increasing: {before!r} is not < {after!r}")
    if split_points and split_points[0] == b"":
        raise ValueError("the empty key cannot be a split point (it is the start of region 0)")


def region_of(key: bytes, split_points: list[bytes]) -> int:
    """Index of the region that holds ``key``: region ``i`` spans ``[split[i-1], split[i])``.

    Example:
        >>> region_of(b"01x", [b"01", b"02"])
        1
    """
    return bisect.bisect_right(split_points, key)


def skew(keys: Iterable[bytes], split_points: list[bytes]) -> SkewReport:
    """Assign keys to the regions defined by ``split_points`` and measure how evenly they spread.

    Args:
        keys: row keys (any iterable, consumed once).
        split_points: sorted region split keys; ``len(split_points) + 1`` regions.

    Returns:
        Counts per region, the total, the largest count, the mean count per region and the
        max/mean ratio (``regions`` for everything in one region, ``0.0`` for no keys).

    Raises:
        ValueError: if the split points are not strictly increasing.

    Example:
        >>> skew([b"a", b"b", b"c"], [b"b"])["counts"]
        [1, 2]
    """
    _check_split_points(split_points)
    counts = [0] * (len(split_points) + 1)
    for key in keys:
        counts[region_of(key, split_points)] += 1
    total = sum(counts)
    mean = total / len(counts)
    largest = max(counts)
    return SkewReport(
        regions=len(counts),
        counts=counts,
        total=total,
        max=largest,
        mean=mean,
        max_mean_ratio=largest / mean if total else 0.0,
    )
