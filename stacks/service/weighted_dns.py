"""Traffic across clouds: Route 53 weighted records, one per placement, weight = replicas.

Why Route 53: it is the one DNS service here that splits one name across arbitrary targets by
weight, and each cloud already gives a stable host name (the ALB's DNS name, the Container App's
ingress FQDN, the Cloud Run URL's host), so no cross-cloud load balancer is needed. A placement at
zero replicas keeps its record at weight 0, which Route 53 serves only when every record is 0.

For the name to be accepted by the Azure and Google endpoints, bind it to them once (Container
Apps custom domain, Cloud Run domain mapping); see docs/stacks.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class WeightedTarget:
    """One placement's endpoint and weight.

    Attributes:
        set_identifier: Unique per record set, e.g. ``aws-us-east-1``.
        endpoint: Host name the record points to (CNAME).
        weight: Relative weight, the placement's replicas.
    """

    set_identifier: str
    endpoint: pulumi.Input[str]
    weight: int


@dataclass(frozen=True)
class WeightedDnsArgs:
    """A record name split over targets by weight.

    Attributes:
        zone_id: Route 53 hosted zone id.
        name: The record name, e.g. ``checkout.example.com``.
        targets: One per placement.
        ttl: Record TTL in seconds; short so a new weight takes effect quickly.
    """

    zone_id: str
    name: str
    targets: list[WeightedTarget] = field(default_factory=list)
    ttl: int = 60


class WeightedDns(pulumi.ComponentResource):
    """One weighted CNAME record per target.

    Attributes:
        weights: ``set_identifier -> weight`` as declared.
    """

    weights: pulumi.Output[dict[str, int]]

    def __init__(
        self, name: str, args: WeightedDnsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("cloudbalance:service:WeightedDns", name, None, opts)
        for target in args.targets:
            aws.route53.Record(
                f"{name}-{target.set_identifier}",
                zone_id=args.zone_id,
                name=args.name,
                type="CNAME",
                ttl=args.ttl,
                set_identifier=target.set_identifier,
                weighted_routing_policies=[{"weight": target.weight}],
                records=[target.endpoint],
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.weights = pulumi.Output.from_input(
            {target.set_identifier: target.weight for target in args.targets}
        )
        self.register_outputs({"weights": self.weights})
