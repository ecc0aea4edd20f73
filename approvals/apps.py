from __future__ import annotations

from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from approvals.receivers import on_run_paused
        from orchestration.runtime.signals import run_paused

        run_paused.connect(on_run_paused, dispatch_uid="approvals-open-reviews")

        from approvals import observability

        observability.connect()

        from approvals import authcache

        authcache.connect()
