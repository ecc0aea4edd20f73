"""Two people (or one double click) deciding at once: one decision, one resume, never two."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse

from approvals.models import Decision
from orchestration.runtime.models import Run


def post_together(users, url, data_for):
    """POST from each user in its own thread (own DB connection), released at once."""
    barrier = threading.Barrier(len(users))
    statuses: list[int] = []

    def post(i, user):
        client = Client()
        client.force_login(user)
        barrier.wait()
        statuses.append(client.post(url, data_for(i)).status_code)
        connections.close_all()

    threads = [threading.Thread(target=post, args=(i, u)) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sorted(statuses)


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_at_once_resume_the_run_once(make_user, make_review):
    review = make_review()
    users = [make_user("reviewer"), make_user("reviewer")]
    actions = [{"action": "approve"}, {"action": "reject", "comment": "no"}]
    statuses = post_together(users, reverse("review-decide", args=[review.pk]), actions.__getitem__)
    assert statuses == [303, 409]
    assert Decision.objects.filter(review=review).count() == 1
    assert Run.objects.filter(thread=review.thread, kind=Run.Kind.RESUME).count() == 1


@pytest.mark.django_db(transaction=True)
def test_double_click_by_one_reviewer_records_one_decision(make_user, make_review):
    review = make_review()
    user = make_user("reviewer")
    statuses = post_together([user] * 3, reverse("review-decide", args=[review.pk]),
                             lambda i: {"action": "approve"})
    assert statuses == [303, 409, 409]
    assert Decision.objects.filter(review=review).count() == 1
    assert Run.objects.filter(thread=review.thread, kind=Run.Kind.RESUME).count() == 1
