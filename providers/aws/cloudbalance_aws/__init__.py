"""cloudbalance provider plugin for AWS: Cost Explorer or Data Exports costs, EC2 prices.

Importing this package does not import boto3 (``cloudbalance providers list`` loads every
installed plugin and must stay instant); boto3 is imported on first use.
"""

from __future__ import annotations

from cloudbalance_aws._options import AWSOptions
from cloudbalance_aws._provider import AWSProvider
from cloudbalance_aws._session import IAM_ACTIONS

__all__ = ["IAM_ACTIONS", "AWSOptions", "AWSProvider"]
