"""Answering an Agent Inbox review: one answer per request (accept, edit the args, respond,
ignore: exactly what its config allows), sent back as Agent Inbox's `HumanResponse` list."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from approvals import agent_inbox
from approvals.access import access_review
from approvals.actions import DecisionInput, ReviewError, do_decide
from approvals.forms import (
    LONG_TEXT,
    SafeJSONField,
    refuse_unsaved_edits,
    refuse_unsent_response,
    shown_initials,
    text_field,
)
from approvals.models import ReviewRequest


def arg_field(name: str, value: Any) -> forms.Field:
    """A form field for one argument, typed by its current value."""
    common: dict[str, Any] = {"label": name.replace("_", " ").capitalize(), "required": False}
    if isinstance(value, bool):
        return forms.BooleanField(**common)
    if isinstance(value, int):
        return forms.IntegerField(**common)
    if isinstance(value, float):
        return forms.FloatField(**common)
    if isinstance(value, str):
        long = "\n" in value or len(value) > LONG_TEXT
        widget = forms.Textarea(attrs={"rows": min(12, value.count("\n") + 3)}) if long else None
        return forms.CharField(widget=widget, strip=False, **common)
    return SafeJSONField(widget=forms.Textarea(attrs={"rows": 4}), **common)


class AgentAnswerForm(forms.Form):
    """Fields `r<i>-type`, `r<i>-arg-<name>` and `r<i>-response` for each request i."""

    def __init__(self, *args: Any, review: ReviewRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.review = review
        self.requests = agent_inbox.requests_of(review.payload)
        self.groups: list[dict[str, Any]] = []
        for i, request in enumerate(self.requests):
            choices = [(t, agent_inbox.LABELS[t]) for t in request.allowed]
            self.fields[f"r{i}-type"] = forms.ChoiceField(
                choices=choices, label="Answer", widget=forms.RadioSelect,
                initial=request.allowed[0],
            )
            arg_keys = []
            if "edit" in request.allowed:
                for name, value in request.args.items():
                    key = f"r{i}-arg-{name}"
                    self.fields[key] = arg_field(name, value)
                    self.initial[key] = value
                    arg_keys.append(key)
            if "response" in request.allowed:
                field = text_field(required=False, label="Response", rows=3)
                field.widget.attrs["data-response-field"] = ""
                self.fields[f"r{i}-response"] = field
            self.groups.append({"index": i, "request": request, "arg_keys": arg_keys})

    def shown_initials(self) -> dict[str, Any]:
        return shown_initials(self[k] for g in self.groups for k in g["arg_keys"])

    def bound_groups(self) -> list[dict[str, Any]]:
        out = []
        for g in self.groups:
            i = g["index"]
            out.append({
                **g,
                "type": self[f"r{i}-type"],
                "args": [self[k] for k in g["arg_keys"]],
                "response": self[f"r{i}-response"] if f"r{i}-response" in self.fields else None,
            })
        return out

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        choices = []
        for g in self.groups:
            i = g["index"]
            kind = cleaned.get(f"r{i}-type") or ""
            args = None
            if kind == "edit":
                args = {k.removeprefix(f"r{i}-arg-"): cleaned.get(k) for k in g["arg_keys"]}
            else:
                # an answer other than edit sends the request's args as they were
                refuse_unsaved_edits(self, [k for k in g["arg_keys"] if k in self.data],
                                     agent_inbox.LABELS.get(kind, kind),
                                     agent_inbox.LABELS["edit"])
            if kind in ("accept", "edit", "ignore"):
                # a typed response goes with the answer "response" only: accepting would
                # send the agent's draft and drop it (seen in a trial: `a` after typing)
                respond = "Send response" if len(self.groups) == 1 else "Respond"
                refuse_unsent_response(self, f"r{i}-response", agent_inbox.LABELS[kind], respond)
            choices.append((kind, args, cleaned.get(f"r{i}-response") or ""))
        try:
            cleaned["responses"] = agent_inbox.answer(self.review.payload, choices)
        except agent_inbox.AnswerError as exc:
            raise forms.ValidationError(str(exc)) from None
        return cleaned


@require_POST
def agent_answer(request: HttpRequest, pk: int) -> HttpResponse:
    from approvals.queue_views import after_decision, same_decision_recorded
    from approvals.views import _review_context

    review = access_review(request.user, pk, for_update=True)
    form = AgentAnswerForm(request.POST, review=review)
    if not form.is_valid():
        context = _review_context(request, review, None)
        context["agent_form"] = form
        return render(request, "approvals/review.html", context, status=400)
    responses = form.cleaned_data["responses"]
    action, text = agent_inbox.summary(responses)
    try:
        do_decide(request.user, review, DecisionInput(action=action, text=text, answer=responses))
    except ReviewError as exc:
        if not same_decision_recorded(request.user, review, action):
            messages.error(request, str(exc))
            review.refresh_from_db()
            return render(request, "approvals/review.html",
                          _review_context(request, review, None), status=409)
        return after_decision(request, review, action, repeated=True)
    if request.htmx:
        return after_decision(request, review, action)
    messages.success(request, "Answer sent to the agent; the run resumes.")
    from approvals.views import _back_to

    return _back_to(request, request.path.removesuffix("agent-answer/"))
