"""The driver program ``headwater submit`` hands to spark-submit: runs one stage of a spec, as ``headwater run``.

spark-submit starts it (in YARN cluster mode inside the application master's container) with the
spec file shipped beside it; the code comes from the shipped environment. It reuses the CLI's run
path, so the stage behaves exactly as under ``headwater run SPEC --stage STAGE --until-drained``.
"""

from __future__ import annotations

import os
import sys

from headwater.context import SUBMITTED_ENV


def main(argv: list[str] | None = None) -> None:
    """``driver.py SPEC --stage process [--until-drained]``: run the stage in this (submitted) driver."""
    os.environ[SUBMITTED_ENV] = "1"
    from headwater.cli import cli

    cli(["run", *(sys.argv[1:] if argv is None else argv), "--no-ui"], prog_name="headwater")


if __name__ == "__main__":
    main()
