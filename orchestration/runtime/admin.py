"""Django admin for threads, runs, the checkpoint tree (read-only) and events.

A thread with audit rows (events, decisions) cannot be deleted: the delete page lists them
(`orchestration.runtime.audit`)."""

from __future__ import annotations

import json
from typing import Any, get_args

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import smart_split, unescape_string_literal

from orchestration.checkpoint.base import CheckpointSource
from orchestration.runtime.models import (
    Checkpoint,
    Event,
    PendingWrite,
    Run,
    StoreItem,
    Thread,
)
from orchestration.runtime.thread_search import threads_matching


class ReadOnlyAdmin(admin.ModelAdmin):
    """The checkpoint tree and the audit trail are written by the engine only.

    Their tables grow for ever (a million checkpoints or events is a few months of a busy
    team): a filtered list says "N results", not also "of M in all", which counted the
    whole table again on every page."""

    show_full_result_count = False

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


@admin.register(Thread)
class ThreadAdmin(admin.ModelAdmin):
    show_full_result_count = False  # as ReadOnlyAdmin
    list_display = ("thread_id", "title", "graph_name", "status", "started_by", "updated_at")
    list_filter = ("status", "graph_name")
    search_fields = ("thread_id", "title")  # searched by `thread_search`: see below
    readonly_fields = ("thread_id", "graph_name", "head_checkpoint_id", "created_at", "updated_at",
                       "recent_runs")
    # an id box, not a list of every user
    raw_id_fields = ("started_by",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A thread starts with its first run (the New run page, the API, `start_thread`),
        # which names its graph and id. The add form made one with neither, and every
        # page listing threads failed on it (an admin trial).
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Thread], search_term: str
    ) -> tuple[QuerySet[Thread], bool]:
        """Django's search (each word, or quoted phrase, in the id or the title), from the
        search index (`thread_search`) instead of reading every thread for each word."""
        for word in smart_split(search_term):
            if word.startswith(('"', "'")) and word[0] == word[-1]:
                word = unescape_string_literal(word)
            queryset = threads_matching(queryset, word)
        return queryset, False

    # The newest runs and a link to all of them, not an inline of every run: a long-lived
    # thread's 10,000 runs made a 15 MB page that took 9 s to draw.
    RECENT_RUNS = 20

    @admin.display(description="runs")
    def recent_runs(self, obj: Thread) -> str:
        runs = list(obj.runs.order_by("-created_at", "-pk")[: self.RECENT_RUNS])
        if not runs:
            return "-"
        rows = format_html_join(
            "", "<li>{} {} {}, {}</li>",
            ((_link(run, f"run {run.pk}"), run.get_kind_display(), run.get_status_display(),
              run.created_at.strftime("%Y-%m-%d %H:%M")) for run in runs))
        every = reverse("admin:orchestration_run_changelist") + f"?thread__id__exact={obj.pk}"
        return format_html('<ul class="plain">{}</ul><a href="{}">All runs of this thread</a>',
                           rows, every)

    # the audit rows a refused delete page names, before "and N more"
    PROTECTED_SHOWN = 20

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        events = Event.objects.filter(thread__in=list(objs)).order_by("pk")
        first = list(events[: self.PROTECTED_SHOWN + 1])
        if first:
            # Audit rows protect it: the delete is refused whatever else it holds, so its
            # checkpoints, runs and reviews are not collected and listed (a long thread's
            # made a 9 MB page that took 12 s), only the rows that protect it.
            protected = [format_html("Event: {}", _link(e)) for e in first[: self.PROTECTED_SHOWN]]
            if len(first) > self.PROTECTED_SHOWN:
                more = events.count() - self.PROTECTED_SHOWN
                protected.append(f"... and {more:,} more events (and the decisions of its "
                                 "reviews)")
            return [], {}, set(), protected
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


class _ValueFilter(admin.SimpleListFilter):
    """A filter by one column's value, the column named by `parameter_name`; the subclass
    says which values it offers (`lookups`), without the stock filter's DISTINCT."""

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset


class SourceFilter(_ValueFilter):
    """A checkpoint's source, from the engine's four: the stock filter found them with a
    DISTINCT over every checkpoint (150 ms a page at a million)."""

    title = "source"
    parameter_name = "source"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(source, source) for source in get_args(CheckpointSource)]


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ("checkpoint_id", "thread", "step", "source", "next", "created_at")
    list_filter = (SourceFilter,)
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
        # Within the thread: the unique index (thread, checkpoint id) finds them; SQLite has
        # no index on `parent_id` alone (migration 0012).
        children = list(
            obj.children.filter(thread_id=obj.thread_id).order_by("checkpoint_id")
        )
        if not children:
            return "-"
        return format_html_join(", ", "{}", ((_link(c, c.checkpoint_id),) for c in children))


class EventKindFilter(_ValueFilter):
    """The kinds of the newest events (any kind filters by its URL, `?kind=...`): the stock
    filter found them with a DISTINCT over every event ever recorded (180 ms a page at a
    million), and no index on the kind is worth its cost on every event written."""

    title = "kind"
    parameter_name = "kind"
    RECENT = 10_000

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # the oldest of the newest RECENT events, by primary key: the rest is a range of it
        edge = Event.objects.order_by("-pk").values_list("pk", flat=True)[self.RECENT - 1:]
        oldest = edge.first() or 0
        kinds = (Event.objects.filter(pk__gte=oldest).order_by("kind")
                 .values_list("kind", flat=True).distinct())
        return [(kind, kind) for kind in kinds]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "thread", "run", "actor", "reason", "created_at")
    list_filter = (EventKindFilter,)
    search_fields = ("thread__thread_id", "reason")
    list_select_related = ("thread", "run", "actor")


class NamespaceFilter(admin.SimpleListFilter):
    """Browse the store by its top-level namespaces (e.g. "customers")."""

    title = "namespace"
    parameter_name = "ns"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        tops = StoreItem.objects.values_list("namespace", flat=True).distinct()
        names = sorted({ns.split(".", 1)[0] for ns in tops})
        return [(name, name) for name in names[:200]]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(Q(namespace=value) | Q(namespace__startswith=f"{value}."))


@admin.register(StoreItem)
class StoreItemAdmin(ReadOnlyAdmin):
    """The store (memory across threads), read-only: nodes write it. Search with a namespace
    prefix ("customers.c-42") or a key; an admin may delete an item (a wrong memory)."""

    list_display = ("namespace_labels", "key", "value_preview", "updated_at")
    list_filter = (NamespaceFilter,)
    search_fields = ("^namespace", "key")
    ordering = ("namespace", "key")
    # only these: a read-only change page otherwise adds every model field too (the raw
    # "namespace" under the readable one)
    fields = ("namespace_labels", "key", "value_json", "created_at", "updated_at")
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    @admin.display(description="namespace", ordering="namespace")
    def namespace_labels(self, obj: StoreItem) -> str:
        return " / ".join(obj.namespace.split("."))

    def _value(self, obj: StoreItem) -> str:
        from orchestration.checkpoint import serde
        from orchestration.runtime.outputs import jsonable

        try:
            return json.dumps(jsonable(serde.loads(bytes(obj.value))), indent=2, sort_keys=True)
        except Exception as error:  # noqa: BLE001 - a damaged row is shown, not fatal
            return f"(cannot read this value: {type(error).__name__}: {error})"

    @admin.display(description="value")
    def value_preview(self, obj: StoreItem) -> str:
        text = " ".join(self._value(obj).split())
        return text if len(text) <= 120 else text[:119] + "…"

    @admin.display(description="value")
    def value_json(self, obj: StoreItem) -> str:
        return format_html("<pre>{}</pre>", self._value(obj))
