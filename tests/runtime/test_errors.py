"""The runtime's one error tree: every error documented in `orchestration.runtime.errors`,
one class per name, and context carried as attributes, not only in messages."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from orchestration.runtime import errors, leases, registry, runs
from orchestration.runtime.models import Run, Thread
from orchestration.runtime.runs import retry_run, start_thread

RUNTIME_MODULES = (runs, registry, leases)


def _exception_classes(module: Any) -> dict[str, type[BaseException]]:
    return {
        name: obj for name, obj in vars(module).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException)
        and (obj.__module__.startswith("orchestration.runtime"))
    }


def test_every_runtime_error_is_defined_in_the_errors_module_under_one_base() -> None:
    for module in RUNTIME_MODULES:
        for name, cls in _exception_classes(module).items():
            assert cls.__module__ == errors.__name__, f"{module.__name__}.{name}"
            assert issubclass(cls, errors.StepwiseRuntimeError), name


def test_there_is_one_unknown_graph() -> None:
    assert runs.UnknownGraph is registry.UnknownGraph is errors.UnknownGraph
    # catching either the run refusal or the registry error catches it
    assert issubclass(errors.UnknownGraph, errors.RunError)
    assert issubclass(errors.UnknownGraph, errors.GraphRegistryError)


def test_the_module_docstring_shows_every_error_class() -> None:
    public = [name for name in _exception_classes(errors) if not name.startswith("_")]
    tree = errors.__doc__ or ""
    assert public
    assert [name for name in public if f" {name} " not in tree] == []


def test_old_import_places_keep_working() -> None:
    from orchestration.runtime.leases import LeaseLost
    from orchestration.runtime.registry import GraphImportError, GraphRegistryError
    from orchestration.runtime.runs import RunError, ThreadHasActiveRun

    assert LeaseLost is errors.LeaseLost
    assert (GraphImportError, GraphRegistryError) == (
        errors.GraphImportError, errors.GraphRegistryError
    )
    assert (RunError, ThreadHasActiveRun) == (errors.RunError, errors.ThreadHasActiveRun)


def test_unknown_graph_names_the_graph_and_the_known_ones(settings: Any) -> None:
    settings.STEPWISE_GRAPHS = {"expense": "demo.workflows.expense:graph"}
    with pytest.raises(errors.UnknownGraph) as caught:
        registry.get_graph("nope")
    assert (caught.value.graph_name, caught.value.known) == ("nope", ("expense",))


def test_graph_import_error_names_the_entry(settings: Any) -> None:
    with pytest.raises(errors.GraphImportError) as caught:
        registry.load_graph("broken", "demo.workflows.expense")
    assert (caught.value.graph_name, caught.value.target) == ("broken", "demo.workflows.expense")


@pytest.mark.django_db
def test_a_refused_run_action_carries_run_thread_and_status() -> None:
    thread = Thread.objects.create(thread_id="t-errors", graph_name="expense")
    run = Run.objects.create(thread=thread, kind=Run.Kind.START, status=Run.Status.WAITING)
    with pytest.raises(errors.RunNotRetryable) as caught:
        retry_run(run, user=None, reason="try")
    error = caught.value
    assert (error.run_id, error.thread_id, error.status) == (
        run.pk, run.thread.thread_id, Run.Status.WAITING
    )


@pytest.mark.django_db
def test_starting_an_unknown_graph_is_a_run_error_with_the_graph_name() -> None:
    with pytest.raises(runs.RunError) as caught:
        start_thread("nope", {}, user=None)
    assert caught.value.graph_name == "nope"


def test_lease_lost_carries_run_and_token() -> None:
    error = leases.LeaseLost(7, "abcdef0123456789")
    assert (error.run_id, error.token) == (7, "abcdef0123456789")
    assert "run 7" in str(error) and "abcdef01" in str(error)
