from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "approvals.api"
    label = "stepwise_api"
    verbose_name = "API and webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from approvals.api import receivers

        receivers.connect()
