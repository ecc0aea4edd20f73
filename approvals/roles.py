"""The roles: groups and the permissions each holds (used by the data migration and tests).

viewer: sees everything, changes nothing. reviewer: claims and decides reviews.
ops: the ops console (resume, retry, cancel runs), forks and starting threads. admin: everything.
"""

from __future__ import annotations

from typing import Any

VIEW = ["view_reviewrequest", "view_decision"]
ROLES: dict[str, list[str]] = {
    "viewer": [*VIEW, "view_ops"],
    "reviewer": [*VIEW, "decide_review"],
    "ops": [*VIEW, "view_ops", "operate_runs", "fork_thread", "start_thread"],
    "admin": [*VIEW, "view_ops", "operate_runs", "fork_thread", "decide_review", "override_claim",
              "start_thread"],
}


def ensure_roles(
    group_model: Any, permission_model: Any, roles: dict[str, list[str]] | None = None
) -> None:
    """Create the groups and give them their permissions (idempotent). Takes the models so a
    migration can pass its historical ones, and the roles as they were at that migration."""
    for role, codenames in (ROLES if roles is None else roles).items():
        group, _ = group_model.objects.get_or_create(name=role)
        perms = permission_model.objects.filter(
            content_type__app_label="approvals", codename__in=codenames
        )
        missing = set(codenames) - set(perms.values_list("codename", flat=True))
        if missing:
            raise RuntimeError(f"role {role}: permissions not found: {sorted(missing)}")
        group.permissions.add(*perms)
