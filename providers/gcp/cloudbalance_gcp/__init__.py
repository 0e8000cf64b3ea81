"""cloudbalance provider plugin for Google Cloud.

Costs come from the BigQuery billing export, prices from the Cloud Billing Catalog.

The Google SDKs are imported inside the methods that call them, so importing this package (what
``cloudbalance providers list`` does through the entry point) costs nothing.
"""

from __future__ import annotations

from cloudbalance_gcp._provider import GCPProvider

__all__ = ["GCPProvider"]
