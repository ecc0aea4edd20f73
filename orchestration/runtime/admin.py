"""Django admin for threads, runs, the checkpoint tree (read-only) and events.

A thread with audit rows (events, decisions) cannot be deleted: the delete page lists them
(`orchestration.runtime.audit`)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from orchestration.runtime.models import Checkpoint, Event, PendingWrite, Run, Thread


class ReadOnlyAdmin(admin.ModelAdmin):
    """The checkpoint tree and the audit trail are written by the engine only."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _link(obj: Any, label: str | None = None) -> str:
    if obj is None:
        return "-"
    meta = obj._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or str(obj))


class RunInline(admin.TabularInline):
    model = Run
    fields = ("kind", "status", "attempts", "worker", "created_at", "finished_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False
    ordering = ("-created_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    list_display = ("thread_id", "title", "graph_name", "status", "started_by", "updated_at")
    list_filter = ("status", "graph_name")
    search_fields = ("thread_id", "title")
    readonly_fields = ("thread_id", "graph_name", "head_checkpoint_id", "created_at", "updated_at")
    inlines = [RunInline]

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        to_delete, model_count, perms_needed, protected = super().get_deleted_objects(
            objs, request
        )
        if protected:
            # The append-only audit trail is why it cannot go (the template says so); a
            # "no permission to delete runs" message would hide that reason.
            perms_needed = set()
        return to_delete, model_count, perms_needed, protected


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("id", "thread", "kind", "status", "attempts", "worker", "created_at",
                    "started_at", "finished_at")
    list_filter = ("status", "kind")
    search_fields = ("thread__thread_id", "thread__title", "worker")
    list_select_related = ("thread",)
    exclude = ("input",)
    readonly_fields = ("thread_link", "previous_link")

    @admin.display(description="thread")
    def thread_link(self, obj: Run) -> str:
        return _link(obj.thread)

    @admin.display(description="previous run")
    def previous_link(self, obj: Run) -> str:
        return _link(obj.previous)


class PendingWriteInline(admin.TabularInline):
    model = PendingWrite
    fields = ("task_id", "idx", "channel")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ("checkpoint_id", "thread", "step", "source", "next", "created_at")
    list_filter = ("source",)
    search_fields = ("checkpoint_id", "thread__thread_id")
    list_select_related = ("thread",)
    exclude = ("internal", "writes")
    readonly_fields = ("thread_link", "parent_link", "children_links")
    inlines = [PendingWriteInline]

    @admin.display(description="thread")
    def thread_link(self, obj: Checkpoint) -> str:
        return _link(obj.thread)

    @admin.display(description="parent")
    def parent_link(self, obj: Checkpoint) -> str:
        return _link(obj.parent, obj.parent.checkpoint_id if obj.parent else None)

    @admin.display(description="children (branches)")
    def children_links(self, obj: Checkpoint) -> str:
        children = list(obj.children.order_by("checkpoint_id"))
        if not children:
            return "-"
        return format_html_join(", ", "{}", ((_link(c, c.checkpoint_id),) for c in children))


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "thread", "run", "actor", "reason", "created_at")
    list_filter = ("kind",)
    search_fields = ("thread__thread_id", "reason")
    list_select_related = ("thread", "actor")
