"""System check: every STEPWISE_GRAPHS entry imports and is a compiled graph, at boot.

Registered by `OrchestrationConfig.ready`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from orchestration.runtime.errors import GraphRegistryError
from orchestration.runtime.registry import load_graph, stall_policy


def check_graphs(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    graphs = getattr(settings, "STEPWISE_GRAPHS", None)
    if not isinstance(graphs, dict):
        return [
            checks.Error(
                "settings.STEPWISE_GRAPHS must be a dict of name -> 'module:attribute'.",
                id="stepwise.E001",
            )
        ]
    problems: list[checks.CheckMessage] = []
    for name, target in graphs.items():
        try:
            load_graph(name, target)
        except GraphRegistryError as exc:
            problems.append(
                checks.Error(
                    str(exc),
                    hint="Fix the entry in STEPWISE_GRAPHS or the module it names.",
                    obj=f"STEPWISE_GRAPHS[{name!r}]",
                    id="stepwise.E002",
                )
            )
    return problems


def check_stall_policies(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every STEPWISE_STALL_POLICY entry builds a policy: a typo fails at boot, not in the
    sweeper when a run first stalls."""
    policies = getattr(settings, "STEPWISE_STALL_POLICY", {}) or {}
    if not isinstance(policies, dict):
        return [checks.Error("settings.STEPWISE_STALL_POLICY must be a dict of graph name (or "
                             "'default') -> policy dict or None.", id="stepwise.E003")]
    problems: list[checks.CheckMessage] = []
    for name in policies:
        try:
            stall_policy(name)
        except GraphRegistryError as exc:
            problems.append(checks.Error(str(exc), obj=f"STEPWISE_STALL_POLICY[{name!r}]",
                                         id="stepwise.E004"))
    return problems
