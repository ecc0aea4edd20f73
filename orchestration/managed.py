"""LangGraph's managed values: state fields the engine fills in at each step instead of
storing them (`langgraph.managed` -> `orchestration.managed`).

    class State(TypedDict):
        messages: Annotated[list, add_messages]
        remaining_steps: RemainingSteps

A node (and a router) reads `state["remaining_steps"]`: how many supersteps the call may
still run before `GraphRecursionError`, counted as LangGraph counts it, so an agent can
answer before its budget ends; `IsLastStep` is True on the last one. They are not
checkpointed, not returned by `invoke` and not in `get_state`; a caller may not give them,
and a node that returns one (a node returning the whole state it got) has it left out, as
LangGraph ignores it.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any

__all__ = ["IsLastStep", "ManagedValue", "RemainingSteps", "managed_kind"]


class ManagedValue:
    """A value the engine computes for a step; `get(remaining)` from the steps left."""

    @staticmethod
    def get(remaining: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class RemainingStepsManager(ManagedValue):
    @staticmethod
    def get(remaining: int) -> int:
        return remaining


class IsLastStepManager(ManagedValue):
    @staticmethod
    def get(remaining: int) -> bool:
        return remaining == 1


RemainingSteps = Annotated[int, RemainingStepsManager]
IsLastStep = Annotated[bool, IsLastStepManager]


def managed_kind(annotation: Any) -> type[ManagedValue] | None:
    """The manager a field's annotation names (`RemainingSteps`, `IsLastStep`, or LangGraph's
    own, read by name so its imports keep working), None for a stored field. `annotation`
    comes without `Required`/`NotRequired` (`state._strip_qualifiers`)."""
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    for meta in annotation.__metadata__:
        if isinstance(meta, type) and issubclass(meta, ManagedValue):
            return meta
        if isinstance(meta, type) and meta.__name__ in _LANGGRAPH:
            return _LANGGRAPH[meta.__name__]
    return None


_LANGGRAPH: dict[str, type[ManagedValue]] = {
    "RemainingStepsManager": RemainingStepsManager, "IsLastStepManager": IsLastStepManager,
}
