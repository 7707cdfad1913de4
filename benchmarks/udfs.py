"""A pass-through function for the `python` transform benchmark."""

from __future__ import annotations

import pandas as pd


def identity(pdf: pd.DataFrame) -> pd.DataFrame:
    """Returns its input: measures the cost of moving rows through Python (Arrow) and back."""
    return pdf
