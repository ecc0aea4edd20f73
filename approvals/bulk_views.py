"""The inbox's bulk decision: preview (what happens to each chosen review), then confirm with
one comment; the outcome of every review is listed on its own."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from approvals import bulk, queue
from approvals.access import DECIDE, require
from approvals.actions import ReviewError
from approvals.forms import text_field


class BulkDecisionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a.value, a.label) for a in bulk.BULK_ACTIONS])
    reviews = forms.TypedMultipleChoiceField(coerce=int, required=False)
    all_matching = forms.BooleanField(required=False)
    comment = text_field(required=False, rows=2)
    confirm = forms.BooleanField(required=False)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # any id is accepted here: `access_review` decides, per review, whether it may be touched
        ids = self.data.getlist("reviews") if self.data else []
        self.fields["reviews"].choices = [(i, i) for i in ids]
        if self.data.get("action") == "reject":
            # not `required=True`: the first step (the inbox's "Preview…") sends no comment;
            # the confirming form says it, so the browser asks for it before sending
            self.fields["comment"].widget.attrs["required"] = True

    def clean(self) -> dict[str, object]:
        cleaned = super().clean()
        if not cleaned.get("reviews") and not cleaned.get("all_matching"):
            raise forms.ValidationError(
                "Select at least one review (or all matching this filter), then preview."
            )
        if (cleaned.get("confirm") and cleaned.get("action") == "reject"
                and not (cleaned.get("comment") or "").strip()):
            self.add_error("comment", "A rejection needs a comment saying why.")
        return cleaned


@require_POST
def bulk_decide(request: HttpRequest) -> HttpResponse:
    require(request.user, DECIDE, "decide reviews")
    form = BulkDecisionForm(request.POST)
    f = queue.queue_filter(request.POST)
    context: dict[str, object] = {"form": form, "inbox_url": queue.inbox_url(f), "filter": f}
    if not form.is_valid():
        return _preview_again(request, form, context)
    action = form.cleaned_data["action"]
    pks = form.cleaned_data["reviews"]
    if form.cleaned_data["all_matching"] and not form.cleaned_data["confirm"]:
        pks = bulk.matching_ids(request.user, f)
    if not form.cleaned_data["confirm"]:
        context.update(_preview(request, pks, action))
        context["capped"] = form.cleaned_data["all_matching"] and len(pks) >= bulk.MAX_BULK
        return render(request, "approvals/bulk_preview.html", context)
    try:
        outcomes = bulk.do_bulk_decide(request.user, pks, action,
                                       form.cleaned_data.get("comment") or "")
    except ReviewError as exc:
        form.add_error("comment", str(exc))
        return _preview_again(request, form, context)
    context.update(outcomes=outcomes, action=action, done=sum(o.ok for o in outcomes))
    return render(request, "approvals/bulk_results.html", context)


def _preview(request: HttpRequest, pks: list[int], action: str) -> dict[str, object]:
    items = bulk.preview(request.user, pks, action)
    return {"items": items, "action": action, "applicable": sum(i.ok for i in items),
            "max_bulk": bulk.MAX_BULK}


def _preview_again(request: HttpRequest, form: BulkDecisionForm,
                   context: dict[str, object]) -> HttpResponse:
    """A refused confirmation (a rejection without its comment) shows the same preview with
    the error at the comment: the reviews, the filter and the form stay. Before, a bare error
    page with only a link to the inbox lost all of them. With no reviews (nothing selected)
    there is no preview to show: the error alone."""
    action, pks = form.cleaned_data.get("action"), form.cleaned_data.get("reviews")
    if action and pks:
        context.update(_preview(request, pks, action))
    return render(request, "approvals/bulk_preview.html", context, status=400)
