"""The ``providers.aws`` options of cloudbalance.yaml, checked before anything touches AWS.

Every option is checked here so a typo fails at configuration time with the option's dotted key
(``providers.aws.granularity``), never an hour later inside a scheduled sync.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NoReturn

from cloudbalance.exceptions import ConfigError
from cloudbalance.provider import EXPORT_REVISION_DAYS

__all__ = ["DIMENSIONS", "AWSOptions", "GroupKey", "parse_options"]

#: Cost Explorer dimensions we can map onto FOCUS columns (and the column each one fills).
DIMENSIONS: dict[str, str] = {
    "SERVICE": "ServiceName",
    "REGION": "RegionId",
    "USAGE_TYPE": "SkuId",
    "INSTANCE_TYPE": "SkuId",
    "LINKED_ACCOUNT": "SubAccountId",
    "RECORD_TYPE": "ChargeCategory",
}

_GRANULARITIES = ("DAILY", "HOURLY")
_SOURCES = ("cost_explorer", "export")
_EXPORT_FORMATS = ("focus", "cur2")
_ACCOUNT = re.compile(r"^\d{12}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


@dataclass(frozen=True)
class GroupKey:
    """One Cost Explorer ``GroupBy`` entry: a dimension or a cost-allocation tag.

    Attributes:
        type: ``DIMENSION`` or ``TAG`` (Cost Explorer's ``GroupDefinitionType``).
        key: The dimension name (``SERVICE``) or the tag key (``workload``).
    """

    type: str
    key: str

    @classmethod
    def parse(cls, text: str) -> GroupKey:
        """Parse ``SERVICE`` / ``region`` (dimensions) or ``tag:<key>`` (a cost-allocation tag).

        Raises:
            ValueError: The text names no dimension we can map, or an empty tag key.
        """
        if text.lower().startswith("tag:"):
            key = text[4:]
            if not key:
                raise ValueError("a tag group needs a key, e.g. 'tag:workload'")
            return cls("TAG", key)
        name = text.strip().upper()
        if name not in DIMENSIONS:
            valid = ", ".join(sorted(DIMENSIONS))
            raise ValueError(f"unknown dimension {text!r} (valid: {valid}, or tag:<key>)")
        return cls("DIMENSION", name)

    def request(self) -> dict[str, str]:
        """The entry as Cost Explorer's ``GroupBy`` list wants it."""
        return {"Type": self.type, "Key": self.key}


@dataclass(frozen=True)
class AWSOptions:
    """The AWS provider's options; each field is one key under ``providers.aws``.

    Attributes:
        profile: Named profile of the shared config/credentials files; ``None`` uses boto3's
            default chain (environment, files, SSO, container and instance roles).
        region: Region of the Cost Explorer and STS clients (Cost Explorer lives in us-east-1).
        role_arn: Role to assume on top of the base credentials (an organisation's payer
            account role); refreshed before it expires.
        external_id: ``ExternalId`` the role's trust policy asks for.
        role_session_name: Session name shown in CloudTrail for the assumed role.
        source: ``cost_explorer`` (the API) or ``export`` (Data Exports Parquet in S3).
        granularity: ``DAILY`` or ``HOURLY`` (Cost Explorer keeps 14 days of hourly data).
        group_by: Up to two Cost Explorer groupings: dimensions (``SERVICE``, ``REGION``,
            ``USAGE_TYPE``, ``INSTANCE_TYPE``, ``LINKED_ACCOUNT``, ``RECORD_TYPE``) or
            ``tag:<key>`` for a cost-allocation tag. The default, ``tag:workload`` and
            ``REGION``, is what the loop needs: cost per workload (the default
            ``workload_tag``) and location.
        lookback_months: How far back Cost Explorer answers (12 by default; 38 when multi-year
            data is enabled in the billing console). Older parts of a window are skipped.
        billing_account_id: The payer account id written to ``BillingAccountId``; found with
            ``sts:GetCallerIdentity`` when not given.
        revision_days: Trailing days ``cloudbalance sync`` re-pulls (AWS restates up to ~3 days
            in Cost Explorer; with ``source: export`` the default is 35, because Data Exports
            rewrite the whole month, and a day in several files is taken from the newest).
        export_bucket: S3 bucket of the Data Export (``source: export``).
        export_prefix: Key prefix of the export (``<prefix>/<export-name>/data/``).
        export_format: ``focus`` (FOCUS 1.0+) or ``cur2`` (CUR 2.0), both Parquet.
        regions: Regions whose prices :meth:`AWSProvider.prices` returns when not told.
        instance_types: Instance types to price; all current types in a region when empty.
        spot: Whether to add spot prices (``ec2:DescribeSpotPriceHistory``).
        operating_system: Price list operating system (``Linux``, ``Windows``, ``RHEL``...).
        pricing_region: Endpoint region of the Price List API (us-east-1, eu-central-1 or
            ap-south-1).
        max_attempts: Tries per API call, the first included, on throttling and transient errors.
        connect_timeout: Seconds to wait for a connection to an AWS endpoint.
        read_timeout: Seconds to wait for each answer (an endpoint that accepts and never
            answers fails after this, and is retried like any transient failure).
    """

    profile: str | None = None
    region: str = "us-east-1"
    role_arn: str | None = None
    external_id: str | None = None
    role_session_name: str = "cloudbalance"
    source: str = "cost_explorer"
    granularity: str = "DAILY"
    group_by: tuple[GroupKey, ...] = field(
        default=(GroupKey("TAG", "workload"), GroupKey("DIMENSION", "REGION"))
    )
    lookback_months: int = 12
    billing_account_id: str | None = None
    revision_days: int = 3
    export_bucket: str | None = None
    export_prefix: str = ""
    export_format: str = "focus"
    regions: tuple[str, ...] = ("us-east-1",)
    instance_types: tuple[str, ...] = ()
    spot: bool = True
    operating_system: str = "Linux"
    pricing_region: str = "us-east-1"
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


def _key(name: str) -> str:
    return f"providers.aws.{name}"


def _fail(name: str, message: str) -> ConfigError:
    return ConfigError(f"{_key(name)}: {message}", key=_key(name))


def _text(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, f"must be a non-empty string, got {value!r}")
    return value.strip()


def _raise(name: str, message: str) -> NoReturn:
    raise _fail(name, message)


def _choice(name: str, value: object, choices: tuple[str, ...], *, upper: bool = False) -> str:
    text = _text(name, value) or ""
    text = text.upper() if upper else text.lower()
    if text not in choices:
        raise _fail(name, f"must be one of {', '.join(choices)}, got {value!r}")
    return text


def _int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(name, f"must be a whole number from {low} to {high}, got {value!r}")
    return value


def _strings(name: str, value: object) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(v, str) and v.strip() for v in items
    ):
        raise _fail(name, f"must be a string or a list of strings, got {value!r}")
    return tuple(str(v).strip() for v in items)


def parse_options(options: Mapping[str, Any]) -> AWSOptions:
    """Check the options given under ``providers.aws`` and fill the defaults.

    Raises:
        ConfigError: An unknown option (the message lists the valid ones) or a bad value,
            naming the option's dotted key.
    """
    valid = [f.name for f in fields(AWSOptions)]
    for name in options:
        if name not in valid:
            raise _fail(str(name), f"unknown option (valid options: {', '.join(valid)})")
    values: dict[str, Any] = {}
    for name, value in options.items():
        if name in ("profile", "external_id", "export_bucket"):
            values[name] = _text(name, value, optional=True)
        elif name in ("region", "role_session_name", "pricing_region", "operating_system"):
            values[name] = _text(name, value)
        elif name == "export_prefix":
            if not isinstance(value, str):
                _raise(name, f"must be a string, got {value!r}")
            values[name] = value.strip("/")
        elif name == "role_arn":
            arn = _text(name, value, optional=True)
            if arn is not None and not _ROLE_ARN.match(arn):
                _raise(name, "must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
            values[name] = arn
        elif name == "billing_account_id":
            account = None if value is None else str(value).strip()
            if account is not None and not _ACCOUNT.match(account):
                _raise(name, f"must be a 12-digit AWS account id, got {value!r}")
            values[name] = account
        elif name == "source":
            values[name] = _choice(name, value, _SOURCES)
        elif name == "export_format":
            values[name] = _choice(name, value, _EXPORT_FORMATS)
        elif name == "granularity":
            values[name] = _choice(name, value, _GRANULARITIES, upper=True)
        elif name == "group_by":
            values[name] = _group_by(_strings(name, value))
        elif name == "lookback_months":
            values[name] = _int(name, value, 1, 38)
        elif name == "revision_days":
            values[name] = _int(name, value, 0, 62)
        elif name == "max_attempts":
            values[name] = _int(name, value, 1, 20)
        elif name in ("regions", "instance_types"):
            values[name] = _strings(name, value)
        elif name in ("connect_timeout", "read_timeout"):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                _raise(name, f"must be a positive number of seconds, got {value!r}")
            values[name] = float(value)
        elif name == "spot":
            if not isinstance(value, bool):
                _raise(name, f"must be true or false, got {value!r}")
            values[name] = value
    if values.get("source") == "export" and "revision_days" not in values:
        values["revision_days"] = EXPORT_REVISION_DAYS
    parsed = AWSOptions(**values)
    if parsed.source == "export" and not parsed.export_bucket:
        raise _fail("export_bucket", "is required when source is 'export'")
    if parsed.source == "export" and parsed.granularity == "HOURLY":
        raise _fail("granularity", "HOURLY applies to source 'cost_explorer' only")
    return parsed


def _group_by(items: tuple[str, ...]) -> tuple[GroupKey, ...]:
    if len(items) > 2:
        _raise("group_by", f"Cost Explorer groups by at most two keys, got {len(items)}")
    keys: list[GroupKey] = []
    for item in items:
        try:
            keys.append(GroupKey.parse(item))
        except ValueError as err:
            raise _fail("group_by", str(err)) from err
    columns = [DIMENSIONS[k.key] for k in keys if k.type == "DIMENSION"]
    if len(set(columns)) < len(columns):
        _raise("group_by", "USAGE_TYPE and INSTANCE_TYPE both fill SkuId; keep one")
    return tuple(keys)
