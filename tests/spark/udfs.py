"""Functions for the ``python`` transform in the tests and in ``examples/all_transforms.yaml``.

Each takes and returns a pandas DataFrame (see :mod:`headwater.transforms.python`). Import path:
``udfs:<name>``, with this folder on ``PYTHONPATH`` (or shipped with ``SparkContext.addPyFile``).
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd


def double_amount(pdf: pd.DataFrame) -> pd.DataFrame:
    """``amount * 2``; raises on a negative amount (that row becomes a dead letter)."""
    bad = pdf[pdf["amount"] < 0]
    if len(bad):
        raise ValueError(f"negative amount {bad['amount'].iloc[0]} for id {bad['id'].iloc[0]}")
    return pdf.assign(amount=pdf["amount"] * 2)


def score(pdf: pd.DataFrame) -> pd.DataFrame:
    """A new shape: ``id, score`` (output_schema ``id bigint, score double``); raises on id 13."""
    if (pdf["id"] == 13).any():
        raise KeyError("unlucky")
    return pd.DataFrame({"id": pdf["id"], "score": pdf["id"] * 0.5})


def tag_orders(pdf: pd.DataFrame) -> pd.DataFrame:
    """For the example pipeline: a ``size`` label from the amount; raises on order 4242 (a dead letter)."""
    if (pdf["order_id"] == 4242).any():
        raise RuntimeError("order 4242 cannot be tagged")
    size = ["large" if a is not None and a >= Decimal(500) else "small" for a in pdf["amount"]]
    return pdf.assign(size=size)


def passthrough(pdf: pd.DataFrame) -> pd.DataFrame:
    """The records unchanged."""
    return pdf


def stall(pdf: pd.DataFrame) -> pd.DataFrame:
    """Never returns in time: a micro-batch that is stuck (the stage's batch_timeout must end it)."""
    import time

    time.sleep(3600)
    return pdf
