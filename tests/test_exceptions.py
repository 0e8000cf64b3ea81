from __future__ import annotations

import inspect

import pytest

from cloudbalance import exceptions as ex


def all_errors() -> list[type[Exception]]:
    return [
        obj
        for _, obj in inspect.getmembers(ex, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == ex.__name__
    ]


def test_every_error_descends_from_the_root() -> None:
    for error in all_errors():
        assert issubclass(error, ex.CloudBalanceError), error


def test_the_docstring_draws_every_error() -> None:
    doc = ex.__doc__ or ""
    for error in all_errors():
        assert error.__name__ in doc, f"{error.__name__} missing from the tree in the docstring"


def test_config_error_names_file_line_and_key() -> None:
    err = ex.ConfigError("expected a number", file="cb.yaml", line=12, key="plan.quantile")
    assert str(err) == "cb.yaml:12: expected a number"
    assert (err.file, err.line, err.key) == ("cb.yaml", 12, "plan.quantile")


def test_schema_error_lists_the_first_issues_and_counts_the_rest() -> None:
    issues = [ex.Issue("is empty", column="y", row=i, file="in.csv") for i in range(1, 9)]
    err = ex.SchemaError("series", issues)
    assert "in.csv, row 1, column 'y': is empty" in str(err)
    assert "and 3 more" in str(err)
    assert err.file == "in.csv"
    assert len(err.issues) == 8


def test_provider_not_found_lists_the_installed_names() -> None:
    err = ex.ProviderNotFoundError("oracle", ["gcp", "aws"])
    assert "installed: aws, gcp" in str(err)
    assert err.provider == "oracle"


def test_infeasible_plan_carries_conflicts_and_suggestions() -> None:
    err = ex.InfeasiblePlanError(
        "no placement serves the demand",
        conflicts=["checkout period 3: demand 40 > quota 32"],
        suggestions=["raise the aws:us-east-1 quota"],
        workload="checkout",
    )
    assert "Conflicts: checkout period 3" in str(err)
    assert "Try: raise the aws:us-east-1 quota" in str(err)
    assert err.workload == "checkout"


def test_conflict_error_shows_both_values() -> None:
    err = ex.ConflictError(file="Pulumi.prod.yaml", key="checkout.aws", expected=6, found=9)
    assert "last plan wrote 6, now 9" in str(err)


@pytest.mark.parametrize(
    ("error", "attribute"),
    [
        (ex.InsufficientHistoryError(unique_id="a", points=3, minimum=14), "unique_id"),
        (ex.ThrottledError("slow down", provider="aws", attempts=5), "attempts"),
        (ex.StackConfigError("bad", file="Pulumi.yaml", line=3), "line"),
        (ex.PolicyError("syntax", file="p.rego", line=4), "file"),
    ],
)
def test_errors_carry_their_context(error: ex.CloudBalanceError, attribute: str) -> None:
    assert getattr(error, attribute) is not None
