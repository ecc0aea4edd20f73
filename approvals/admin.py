"""Reviews and decisions in the Django admin: read-only, since decisions are the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from approvals.models import Decision, ReviewRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    # a filtered list does not count the whole table again (orchestration.runtime.admin)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReviewRequest)
class ReviewRequestAdmin(ReadOnlyAdmin):
    list_display = (
        "pk", "title", "thread", "node", "status", "assignee", "claimed_by", "created_at"
    )
    list_filter = ("status", "kind")
    search_fields = ("title", "thread__thread_id", "interrupt_id")
    list_select_related = ("thread", "claimed_by")


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ("pk", "review", "action", "decided_by", "decided_at", "resumed_run")
    list_filter = ("action",)
    list_select_related = ("review", "decided_by", "resumed_run")
