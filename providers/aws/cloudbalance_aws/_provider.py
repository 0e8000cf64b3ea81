"""The ``aws`` cost provider: Cost Explorer or Data Exports for costs, EC2 prices, checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from cloudbalance.exceptions import CloudBalanceError
from cloudbalance.models import Location
from cloudbalance.provider import ProviderCheck
from cloudbalance_aws._costs import ce_window, cost_explorer_costs, empty_costs
from cloudbalance_aws._exports import export_costs
from cloudbalance_aws._options import AWSOptions, parse_options
from cloudbalance_aws._prices import ec2_prices
from cloudbalance_aws._session import AWSClients

__all__ = ["AWSProvider"]


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class AWSProvider:
    """Costs and prices of AWS, for ``providers: {aws: {...}}`` in cloudbalance.yaml.

    Building it checks the options and nothing else (no network, no credentials): those are
    looked up by :meth:`check` and on first use.

    Args:
        **options: The keys under ``providers.aws`` (see :class:`AWSOptions`).

    Raises:
        ConfigError: An unknown option (the valid ones are listed) or a bad value.

    Example:
        >>> provider = AWSProvider(profile="billing", group_by=["tag:workload", "REGION"])
        >>> frame = provider.costs(datetime(2024, 1, 1), datetime(2024, 2, 1))  # doctest: +SKIP
    """

    name = "aws"

    def __init__(self, **options: Any) -> None:
        self.options: AWSOptions = parse_options(options)
        self.revision_days: int = self.options.revision_days
        self.clients = AWSClients(self.options)
        self.now: Callable[[], datetime] = _utcnow

    @property
    def sleep(self) -> Callable[[float], None]:
        """How the provider waits between retries (tests replace it so they never wait)."""
        return self.clients.sleep

    @sleep.setter
    def sleep(self, value: Callable[[float], None]) -> None:
        self.clients.sleep = value

    def billing_account_id(self) -> str:
        """The configured payer account, or the account of the credentials in use."""
        if self.options.billing_account_id:
            return self.options.billing_account_id
        return str(self.clients.identity()["Account"])

    def costs(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Cost lines of the whole UTC days starting in ``[start, end)``.

        From Cost Explorer (``source: cost_explorer``), limited to what it keeps
        (``lookback_months``; 14 days of hourly data), or from the Data Export in S3
        (``source: export``).

        Raises:
            CredentialsError: Missing, expired or refused credentials (names the IAM action).
            ThrottledError: The API kept throttling after the retries.
            ProviderError: Any other failure, with the SDK error chained.
        """
        now = self.now()
        if self.options.source == "export":
            window = ce_window(start, end, granularity="DAILY", lookback_months=1200, now=now)
            if window is None:
                return empty_costs()
            return export_costs(self.clients, self.options, *window)
        granularity, lookback = self.options.granularity, self.options.lookback_months
        if (
            ce_window(start, end, granularity=granularity, lookback_months=lookback, now=now)
            is None
        ):
            return empty_costs()
        return cost_explorer_costs(
            self.clients,
            self.options,
            start,
            end,
            billing_account_id=self.billing_account_id(),
            now=now,
        )

    def prices(self, locations: Sequence[Location] | None = None) -> pd.DataFrame:
        """On-demand and spot hourly prices of EC2 instance types.

        Args:
            locations: Regions to price (those of cloud ``aws``); the configured ``regions``
                when ``None``.
        """
        if locations is None:
            regions = list(self.options.regions)
        else:
            regions = sorted({loc.region for loc in locations if loc.cloud == "aws"})
        return ec2_prices(self.clients, self.options, regions, now=self.now())

    def _reason(self, err: CloudBalanceError) -> str:
        """The error's text without the ``provider 'aws':`` prefix (the line names it already)."""
        return str(err).removeprefix(f"provider {self.name!r}: ")

    def check(self) -> ProviderCheck:
        """Whether credentials are found and accepted (``sts:GetCallerIdentity``); never raises.

        The detail names where the credentials come from and the account and ARN they belong
        to; never a key or token.
        """
        try:
            import boto3  # noqa: F401
        except ImportError:
            return ProviderCheck(
                self.name, ok=False, missing="boto3 (pip install cloudbalance-aws)"
            )
        profile = f"profile {self.options.profile!r}" if self.options.profile else "default chain"
        try:
            method = self.clients.credential_source()
            if method is None:
                return ProviderCheck(
                    self.name,
                    ok=False,
                    detail=profile,
                    missing="AWS credentials (aws configure, aws sso login, AWS_PROFILE, "
                    "or an instance/container role)",
                )
            who = self.clients.identity()
        except CloudBalanceError as err:
            return ProviderCheck(self.name, ok=False, detail=profile, missing=self._reason(err))
        role = f", role {self.options.role_arn}" if self.options.role_arn else ""
        detail = f"{profile} ({method}){role}, account {who['Account']}, {who['Arn']}"
        if self.options.source != "export":
            return ProviderCheck(self.name, ok=True, detail=f"{detail}; Cost Explorer")
        where = f"s3://{self.options.export_bucket}/{self.options.export_prefix}"
        try:
            self.clients.call(
                "s3",
                "list_objects_v2",
                Bucket=self.options.export_bucket,
                Prefix=self.options.export_prefix,
                MaxKeys=1,
            )
        except CloudBalanceError as err:
            return ProviderCheck(
                self.name, ok=False, detail=f"{detail}; export {where}", missing=self._reason(err)
            )
        return ProviderCheck(self.name, ok=True, detail=f"{detail}; export {where}")
