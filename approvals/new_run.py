"""The "New run" pages: pick a graph, fill a form generated from its input schema (the same
schema-to-field code as the review forms), and the new thread opens with live progress.
Input is checked exactly as the API checks it (`approvals.api.inputs.check_input`)."""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from approvals.access import access_graphs
from approvals.api.inputs import check_input, input_schema
from approvals.api.problems import ApiProblem
from approvals.forms import schema_field
from orchestration.runtime import registry, runs
from orchestration.runtime.models import Thread


def _field_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """pydantic writes a Decimal as anyOf number|string: a text box keeps its exact digits."""
    spec = dict(spec)
    kinds = [s.get("type") for s in spec.get("anyOf", []) if isinstance(s, Mapping)]
    if "type" not in spec and "string" in kinds:
        spec["type"] = "string"
    return spec


def _is_placeholder(default: Any) -> bool:
    """A default that is only its type's empty value (0, 0.0, "", [], {}, null), not a value
    a graph suggests (a boolean's False is shown as an unticked box, which is the same)."""
    return default is None or (not isinstance(default, bool) and default in (0, "", [], {}))


def _when_empty(default: Any) -> str:
    if default is None or default == "":
        return "Optional."
    return f"Optional: {json.dumps(default)} if left empty."


class NewRunForm(forms.Form):
    title = forms.CharField(max_length=300, required=False,
                            help_text="Shown in the thread list; optional.")

    def __init__(self, *args: Any, graph: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.graph = graph
        schema = input_schema(graph)
        required = set(schema.get("required", []))
        self.input_fields: list[str] = []
        for name, raw in (schema.get("properties") or {}).items():
            spec = _field_spec(raw)
            key = f"input__{name}"
            field = self.fields[key] = schema_field(name, spec, required=name in required)
            if "default" in spec:
                if _is_placeholder(spec["default"]):
                    # A type's zero value (a dataclass's `= 0`) prefilled read as a choice made
                    # for the user ("expense id 0"); left empty, the graph's default applies
                    # all the same, so say so instead.
                    field.help_text = " ".join(filter(None, [
                        str(field.help_text), _when_empty(spec["default"])]))
                else:
                    self.initial[key] = spec["default"]
            self.input_fields.append(key)

    def input_bound_fields(self) -> list[forms.BoundField]:
        return [self[k] for k in self.input_fields]

    def any_input_required(self) -> bool:
        return any(self.fields[k].required for k in self.input_fields)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        values = {
            key.removeprefix("input__"): cleaned[key]
            for key in self.input_fields
            if cleaned.get(key) not in (None, "")
        }
        try:
            cleaned["input"] = check_input(self.graph, values)
        except ApiProblem as exc:
            for field, messages in exc.errors.items():
                key = "input__" + field.removeprefix("input.").split(".")[0]
                for message in messages:
                    self.add_error(key if key in self.fields else None, _for_people(message))
        return cleaned


# pydantic's wording, as the API returns it, in the words of a form (a Decimal field is a
# text box here: "decimal" says little to someone typing an amount)
_PLAINER = {
    "Input should be a valid decimal": "Enter a number, such as 40.00.",
    "Input should be a valid number": "Enter a number, such as 40.00.",
    "Input should be a valid integer": "Enter a whole number.",
}


def _for_people(message: str) -> str:
    return _PLAINER.get(message.split(",")[0].strip(), message)


@dataclass(frozen=True)
class GraphCard:
    """A workflow on the "New run" page: what it does, what it takes, what of it is under way."""

    name: str
    about: str  # the first sentence of its module's docstring (Markdown)
    takes: list[str]  # its input fields' titles
    threads: list[tuple[str, str, int]]  # (status, label, count) of its unfinished threads
    broken: str = ""  # why it cannot be loaded, if it cannot


# The thread statuses the page counts: work under way, or waiting on someone.
_COUNTED = (Thread.Status.WAITING, Thread.Status.RUNNING, Thread.Status.STALLED,
            Thread.Status.FAILED)
_ABOUT_MAX = 240


def graph_cards() -> list[GraphCard]:
    """Every registered graph's card, with one query for all their thread counts (by the
    status index: only unfinished threads are read)."""
    counts: dict[str, dict[str, int]] = {}
    rows = (Thread.objects.filter(status__in=_COUNTED).values_list("graph_name", "status")
            .annotate(n=Count("id")).order_by())
    for graph, status, n in rows:
        counts.setdefault(graph, {})[status] = n
    labels = dict(Thread.Status.choices)
    cards = []
    for name in registry.graph_names():
        mine = counts.get(name, {})
        threads = [(s, labels[s].lower(), mine[s]) for s in _COUNTED if mine.get(s)]
        try:
            schema = input_schema(name)
        except Exception as exc:  # noqa: BLE001 - one graph that fails must not hide the rest
            cards.append(GraphCard(name, "", [], threads, broken=str(exc) or type(exc).__name__))
            continue
        takes = [str(spec.get("title") or key.replace("_", " ").capitalize())
                 for key, spec in (schema.get("properties") or {}).items()]
        cards.append(GraphCard(name, _about(name), takes, threads))
    return cards


def _about(name: str) -> str:
    """The first sentence of the docstring of the module that defines graph `name` (imported
    by `input_schema` already), cut at `_ABOUT_MAX`; "" without one."""
    module = sys.modules.get(settings.STEPWISE_GRAPHS[name].partition(":")[0])
    doc = inspect.getdoc(module) or ""
    paragraph = " ".join(doc.split("\n\n", 1)[0].split())
    sentence = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0]
    if len(sentence) > _ABOUT_MAX:
        sentence = sentence[: _ABOUT_MAX - 1].rsplit(" ", 1)[0]
        if sentence.count("`") % 2:  # cut inside a code span: drop the span's start
            sentence = sentence[: sentence.rindex("`")].rstrip()
        sentence += "…"
    return sentence


@require_GET
def choose_graph(request: HttpRequest) -> HttpResponse:
    access_graphs(request.user, for_update=True)
    return render(request, "approvals/new_run_graphs.html", {"cards": graph_cards()})


@require_http_methods(["GET", "POST"])
def new_run(request: HttpRequest, graph: str) -> HttpResponse:
    access_graphs(request.user, for_update=True)
    if graph not in registry.graph_names():
        raise Http404(f"There is no graph {graph!r}.")
    form = NewRunForm(request.POST if request.method == "POST" else None, graph=graph)
    if request.method == "POST" and form.is_valid():
        try:
            run = runs.start_thread(graph, form.cleaned_data["input"], user=request.user,
                                    title=form.cleaned_data["title"])
        except runs.RunError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("thread", run.thread.thread_id)
    return render(request, "approvals/new_run.html", {"form": form, "graph": graph},
                  status=422 if form.errors else 200)
