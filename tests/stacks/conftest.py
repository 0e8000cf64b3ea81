"""Run the stacks/ Pulumi programs under the SDK's mocks, one clean runtime per run.

The Pulumi runtime keeps its settings, config and root resource in process-global state, so every
run resets them, installs fresh mocks, sets ``cloudbalance:workloads`` and executes the program's
``__main__.py`` again (its sibling modules are re-imported too). Mocked inputs arrive camelCase
with integers as floats; registrations are asynchronous, so a run waits for all of them (the
``pulumi.runtime.test`` wrapper) before the test reads what was declared.
"""

from __future__ import annotations

import importlib
import json
import runpy
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings

#: The provider SDKs warn about their own deprecated resources when a submodule is first
#: imported; those warnings are theirs, not ours, so they are ignored for the SDK modules only.
SDK_WARNINGS = r"pulumi_(aws|azure_native|gcp)(\..*)?$"

#: The resource classes the programs use. The SDKs load their modules lazily on first attribute
#: access (the Azure ones take seconds each), so they are loaded once here, not inside a test.
SDK_CLASSES = {
    "pulumi_aws": [
        "autoscaling.Group",
        "ec2.LaunchTemplate",
        "ec2.SecurityGroup",
        "ecs.Service",
        "iam.Role",
        "lb.LoadBalancer",
        "route53.Record",
        "ssm.get_parameter_output",
    ],
    "pulumi_azure_native": [
        "app.ContainerApp",
        "compute.VirtualMachineScaleSet",
        "network.VirtualNetwork",
        "resources.ResourceGroup",
    ],
    "pulumi_gcp": ["cloudrunv2.Service", "compute.InstanceTemplate"],
}

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=SDK_WARNINGS)
    for package, paths in SDK_CLASSES.items():
        root = importlib.import_module(package)
        for path in paths:
            module, _, attribute = path.partition(".")
            getattr(getattr(root, module), attribute)

REPO = Path(__file__).resolve().parents[2]
STACKS = REPO / "stacks"


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs as outputs, add the outputs the programs read, and record every resource."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []
        self.calls: list[pulumi.runtime.MockCallArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        outputs = dict(args.inputs)
        outputs.setdefault("name", args.name)
        outputs.setdefault("arn", f"arn:mock:{args.typ}:{args.name}")
        if args.typ == "aws:lb/loadBalancer:LoadBalancer":
            outputs["dnsName"] = f"{args.name}.elb.amazonaws.com"
        elif args.typ == "gcp:cloudrunv2/service:Service":
            outputs["uri"] = f"https://{args.name}.a.run.app"
        elif args.typ == "azure-native:app:ContainerApp":
            configuration = dict(outputs.get("configuration") or {})
            ingress = dict(configuration.get("ingress") or {})
            ingress["fqdn"] = f"{args.name}.azurecontainerapps.io"
            configuration["ingress"] = ingress
            outputs["configuration"] = configuration
        elif args.typ == "azure-native:network:VirtualNetwork":
            outputs["subnets"] = [
                {**subnet, "id": f"/subnets/{subnet.get('name')}"}
                for subnet in outputs.get("subnets") or []
            ]
        elif args.typ == "gcp:compute/instanceTemplate:InstanceTemplate":
            outputs["selfLinkUnique"] = f"projects/p/global/instanceTemplates/{args.name}?uid=1"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        self.calls.append(args)
        if args.token == "aws:ec2/getVpc:getVpc":
            return {"id": f"vpc-default-{args.args.get('region')}"}
        if args.token == "aws:ec2/getSubnets:getSubnets":
            return {"ids": ["subnet-a", "subnet-b"]}
        if args.token == "aws:ssm/getParameter:getParameter":
            return {"value": "ami-0al2023", "name": args.args.get("name"), "type": "String"}
        return {}


@dataclass
class StackRun:
    """What one run of a program declared."""

    mocks: RecordingMocks
    namespace: dict[str, Any] = field(default_factory=dict)

    @property
    def resources(self) -> list[pulumi.runtime.MockResourceArgs]:
        """Every resource except providers."""
        return [r for r in self.mocks.resources if not r.typ.startswith("pulumi:providers:")]

    def of_type(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name: str) -> pulumi.runtime.MockResourceArgs:
        found = [r for r in self.of_type(typ) if r.name == name]
        assert len(found) == 1, (
            f"expected one {typ} named {name}, got {[r.name for r in self.of_type(typ)]}"
        )
        return found[0]

    def names(self, typ: str) -> set[str]:
        return {r.name for r in self.of_type(typ)}


Runner = Callable[..., StackRun]


def _program_modules(project: Path) -> set[str]:
    names = {p.stem for p in project.glob("*.py") if p.stem != "__main__"}
    return names


@pytest.fixture
def run_stack() -> Iterator[Runner]:
    """Run ``stacks/<project>`` with the given workloads; optional ``check`` returns an Output.

    ``check(namespace)`` receives the program's globals and may return an ``Output`` whose
    ``apply`` asserts; the run waits for it.
    """
    added: list[str] = []
    cleanup: set[str] = set()

    def run(
        project: str,
        workloads: Any,
        *,
        check: Callable[[dict[str, Any]], Any] | None = None,
        extra_config: dict[str, str] | None = None,
    ) -> StackRun:
        directory = STACKS / project
        modules = _program_modules(directory)
        cleanup.update(modules)
        for module in modules:
            sys.modules.pop(module, None)
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
            added.append(str(directory))
        pulumi_settings.ROOT.set(None)
        mocks = RecordingMocks()
        pulumi.runtime.set_mocks(
            mocks, project=f"cloudbalance-{project}", stack="test", preview=False
        )
        config = {"cloudbalance:workloads": json.dumps(workloads)}
        config.update(extra_config or {})
        pulumi.runtime.set_all_config(config, [])
        result = StackRun(mocks)

        @pulumi.runtime.test
        def program() -> Any:
            result.namespace = runpy.run_path(str(directory / "__main__.py"), run_name="__main__")
            return check(result.namespace) if check is not None else None

        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning, module=SDK_WARNINGS)
                program()
        finally:
            for module in modules:
                sys.modules.pop(module, None)
        return result

    yield run
    for path in added:
        while path in sys.path:
            sys.path.remove(path)
    for module in cleanup:
        sys.modules.pop(module, None)
    pulumi.runtime.set_all_config({}, [])
