"""Frame helpers shared by the costs and prices halves."""

from __future__ import annotations

import pandas as pd

from cloudbalance.schema import FrameSchema

__all__ = ["empty_frame"]


def empty_frame(schema: FrameSchema) -> pd.DataFrame:
    """An empty frame with the schema's columns and dtypes.

    Same as :func:`cloudbalance.testing.empty_frame`, which is not imported here because that
    module imports pytest, and the plugin must load fast for ``cloudbalance providers list``.
    """
    return schema.validate(pd.DataFrame({name: [] for name in schema.names}))
