"""A user's ``python`` transform module, shipped to the executors by headwater (never installed there).

It records where it ran: the Python environment (``sys.prefix``) and the headwater package the
Python worker imported, so a test can tell the shipped environment from the driver's virtualenv.
"""

from __future__ import annotations

import sys

import pandas as pd

import headwater


def record(pdf: pd.DataFrame) -> pd.DataFrame:
    """Every row, with ``env`` (the Python worker's ``sys.prefix``) and ``hwfile`` (``headwater.__file__``)."""
    return pdf.assign(env=sys.prefix, hwfile=headwater.__file__)
