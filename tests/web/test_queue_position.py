"""The queue position on a review ("3 of 10 in this list") after a decision in place: the
next review's page must count the list as a reload would, without the review just decided."""

from __future__ import annotations

import pytest
from django.urls import reverse

from orchestration.runtime import runs

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def position(page: str) -> str:
    return page.split('<span class="muted">(', 1)[1].split(")", 1)[0]


def test_the_next_review_after_an_in_place_approval_counts_the_list_as_a_reload(
    start_paused, client_as, capture
):
    reviews = [start_paused() for _ in range(4)]
    client = client_as("reviewer")
    third = reviews[2]
    before = client.get(reverse("review", args=[third.pk])).content.decode()
    assert position(before) == "3 of 4 in this list"

    url = reverse("review-decide-next", args=[third.pk])
    with runs.run_inline(), capture(execute=True):
        response = client.post(url, {"action": "approve"}, **HTMX)
    assert response["HX-Push-Url"] == reverse("review", args=[reviews[3].pk])

    reloaded = client.get(reverse("review", args=[reviews[3].pk])).content.decode()
    assert position(reloaded) == "3 of 3 in this list"
    assert position(response.content.decode()) == position(reloaded)


def test_a_list_that_shows_decided_reviews_still_counts_the_one_just_decided(
    start_paused, client_as, capture
):
    """With every status shown (`status=all`) the decided review stays in the list, in place:
    dropping it from the cached rows would be the opposite mistake."""
    reviews = [start_paused() for _ in range(3)]
    client = client_as("reviewer")
    url = reverse("review-decide-next", args=[reviews[0].pk]) + "?status=all"
    with runs.run_inline(), capture(execute=True):
        response = client.post(url, {"action": "approve"}, **HTMX)
    reloaded = client.get(reverse("review", args=[reviews[1].pk]) + "?status=all")
    assert position(response.content.decode()) == position(reloaded.content.decode())
