"""Template helpers of the reviewer's pages: the payload read from its schema, Markdown, what a
decision sets in motion, and the queue around the review."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from approvals import queue
from approvals.consequences import Consequence, consequence
from approvals.markdown import render_markdown
from approvals.models import ReviewRequest
from approvals.schema_render import payload_schema, render_value

register = template.Library()


@register.filter
def markdown(text: Any) -> SafeString:
    return render_markdown(str(text or ""))


@register.simple_tag
def payload_html(review: ReviewRequest) -> SafeString:
    return render_value(review.data, payload_schema(review.payload))


@register.simple_tag
def next_steps(review: ReviewRequest) -> Consequence | None:
    return consequence(review)


@register.simple_tag(takes_context=True)
def review_queue(context: dict[str, Any], review: ReviewRequest) -> dict[str, Any]:
    """The list the review was opened from: neighbours and the URLs the page links to."""
    request = context["request"]
    f = queue.queue_filter(request.GET)
    around = queue.request_neighbours(request, f, review.pk)
    query = queue.filter_query(f)
    return {
        "around": around,
        "query": query,
        "self_url": queue.review_url(review.pk, f),
        "previous_url": queue.review_url(around.previous, f) if around.previous else "",
        "next_url": queue.review_url(around.next, f) if around.next else "",
        "inbox_url": queue.inbox_url(f),
    }


@register.simple_tag
def queue_query(f: Any) -> str:
    """The inbox filter as the query string review links carry (the queue's list)."""
    return queue.filter_query(f) if f is not None else ""


@register.simple_tag
def agent_answer_form(review: ReviewRequest, bound: Any = None) -> Any:
    """The Agent Inbox answer form: the bound one a failed answer came back with, else new."""
    from approvals.agent_inbox_views import AgentAnswerForm

    return bound if isinstance(bound, AgentAnswerForm) else AgentAnswerForm(review=review)
