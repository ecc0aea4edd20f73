"""The reviewer's queue flow: decide, then the next open review of the same list, in place.

`decide_next` is `views.decide` for htmx: the same access check, form and `do_decide`, but
on success it answers with the next review's page (htmx swaps it in and pushes its URL), with
a notice of what was just decided and a link back. Without htmx the form posts to
`views.decide` as before.

Deciding is idempotent from the reviewer's side: the same decision sent twice (a double
keystroke, a retried request) is recorded once and both answers move on to the same next
review; a different decision on a decided review is refused as before.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from approvals import queue
from approvals.access import access_review
from approvals.actions import ReviewError, do_decide
from approvals.forms import DecisionForm
from approvals.models import Decision, ReviewRequest


@require_POST
def decide_next(request: HttpRequest, pk: int) -> HttpResponse:
    from approvals.views import _decision_input, _review_context

    review = access_review(request.user, pk, for_update=True)
    form = DecisionForm(request.POST, review=review)
    if not form.is_valid():
        return render(request, "approvals/review.html",
                      _review_context(request, review, form), status=400)
    d = _decision_input(form)
    repeated = False
    try:
        do_decide(request.user, review, d)
    except ReviewError as exc:
        if not same_decision_recorded(request.user, review, d.action):
            from approvals.views import decision_refused

            return decision_refused(request, review, exc,
                                    in_list=queue.queue_filter(request.GET))
        repeated = True
    return after_decision(request, review, d.action, repeated)


def same_decision_recorded(user: Any, review: ReviewRequest, action: str) -> bool:
    return Decision.objects.filter(review=review, decided_by=user, action=action).exists()


def after_decision(
    request: HttpRequest, review: ReviewRequest, action: str, repeated: bool = False
) -> HttpResponse:
    """The next open review of the list with a notice, or the inbox when none is left."""
    from approvals.views import _review_context

    f = queue.queue_filter(request.GET)
    label = Decision.Action(action).label if action in Decision.Action.values else action
    notice = {
        "action": label, "pk": review.pk, "title": review.title or review.node,
        "url": queue.review_url(review.pk, f), "repeated": repeated,
    }
    nxt = queue.request_neighbours(request, f, review.pk).next_open
    if nxt is None:
        from django.contrib import messages

        messages.success(
            request, f"{label}: review #{review.pk}. That was the last open review in this list."
        )
        return HttpResponseClientRedirect(queue.inbox_url(f))
    following = access_review(request.user, nxt, for_update=False)
    form = DecisionForm(review=following)
    context = _review_context(request, following, form)
    context["queue_notice"] = notice
    response = render(request, "approvals/review.html", context)
    response["HX-Push-Url"] = queue.review_url(nxt, f)
    return response
