"""cloudbalance provider plugin for Azure: Cost Management costs and Retail Prices API prices.

Importing this package imports no Azure SDK: the SDKs load on the first call that needs them,
so ``cloudbalance providers list`` stays instant.
"""

from __future__ import annotations

from cloudbalance_azure._provider import OPTIONS, AzureProvider

__all__ = ["OPTIONS", "AzureProvider"]
