"""The inbox: filters, order, counts, claims, and a constant number of queries."""

from __future__ import annotations

import threading

import pytest
import shown
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from django.urls import reverse

from approvals.models import ReviewRequest


def listed(response) -> list[int]:
    return shown.inbox_pks(response)


def test_inbox_lists_open_reviews_oldest_first(client_as, make_review):
    first, second = make_review(), make_review()
    make_review(status="decided")
    response = client_as("viewer").get(reverse("inbox"))
    assert listed(response) == [first.pk, second.pk]


def test_inbox_filters_by_graph(client_as, make_review, make_thread):
    make_review()
    other = make_review(thread=make_thread(graph_name="expense"))
    response = client_as("viewer").get(reverse("inbox"), {"graph": "expense"})
    assert listed(response) == [other.pk]


def test_inbox_filters_by_status(client_as, make_review):
    make_review()
    decided = make_review(status="decided")
    assert listed(client_as("viewer").get(reverse("inbox"), {"status": "decided"})) == [decided.pk]


def test_mine_means_claimed_by_me_or_assigned_to_me_or_my_group(make_user, make_review):
    me = make_user("reviewer", username="carol")
    claimed = make_review(status="claimed", claimed_by=me)
    by_name = make_review(assignee="carol")
    by_group = make_review(assignee="reviewer")
    make_review(assignee="dave")
    make_review()
    client = Client()
    client.force_login(me)
    response = client.get(reverse("inbox"), {"assignee": "mine"})
    assert listed(response) == [claimed.pk, by_name.pk, by_group.pk]


def test_unassigned_means_no_assignee_and_not_claimed(make_user, make_review, client_as):
    free = make_review()
    make_review(assignee="dave")
    make_review(status="claimed", claimed_by=make_user())
    response = client_as("viewer").get(reverse("inbox"), {"assignee": "unassigned"})
    assert listed(response) == [free.pk]


def test_inbox_counts_reviews_per_status(client_as, make_review):
    make_review(), make_review(), make_review(status="decided")
    counts = shown.status_counts(client_as("viewer").get(reverse("inbox")))
    assert (counts["pending"], counts["decided"], counts["open"]) == (2, 1, 2)


def test_htmx_request_gets_only_the_list_partial(client_as, make_review):
    make_review()
    response = client_as("viewer").get(reverse("inbox"), headers={"HX-Request": "true"})
    page = response.content.decode()
    assert page.lstrip().startswith('<section id="inbox-list"')
    assert "<html" not in page


@pytest.mark.parametrize("n", [10, 200])
def test_inbox_query_count_does_not_grow_with_reviews(
    n, make_user, make_review, make_thread, django_assert_num_queries
):
    user = make_user("reviewer")
    threads = [make_thread() for _ in range(5)]
    for i in range(n):
        make_review(thread=threads[i % 5], status="claimed" if i % 3 == 0 else "pending",
                    claimed_by=user if i % 3 == 0 else None)
    client = Client()
    client.force_login(user)
    # session, user, permissions with group names (one statement), the page (one statement:
    # overdue ones, then pending and claimed, one index range each, no COUNT), status
    # counts with the graphs (one statement)
    with django_assert_num_queries(5):
        response = client.get(reverse("inbox"))
    assert response.status_code == 200
    assert len(shown.inbox_pks(response)) == min(n, 50)


def test_claim_marks_the_review_claimed_by_me(make_user, make_review):
    review = make_review()
    user = make_user("reviewer")
    client = Client()
    client.force_login(user)
    client.post(reverse("review-claim", args=[review.pk]))
    review.refresh_from_db()
    assert (review.status, review.claimed_by) == ("claimed", user)


def test_second_claim_by_someone_else_is_refused(make_user, make_review, client_as):
    review = make_review()
    first = make_user("reviewer", username="first")
    c1 = Client()
    c1.force_login(first)
    c1.post(reverse("review-claim", args=[review.pk]))
    response = client_as("reviewer").post(reverse("review-claim", args=[review.pk]), follow=True)
    assert "claimed by first" in response.content.decode()
    review.refresh_from_db()
    assert review.claimed_by == first


def test_unclaim_returns_the_review_to_pending(make_user, make_review):
    user = make_user("reviewer")
    review = make_review(status="claimed", claimed_by=user)
    client = Client()
    client.force_login(user)
    client.post(reverse("review-unclaim", args=[review.pk]))
    review.refresh_from_db()
    assert (review.status, review.claimed_by) == ("pending", None)


def test_review_claimed_by_another_reviewer_cannot_be_decided(make_user, make_review, client_as):
    review = make_review(status="claimed", claimed_by=make_user("reviewer", username="erin"))
    response = client_as("reviewer").post(reverse("review-decide", args=[review.pk]),
                                          {"action": "approve"})
    assert response.status_code == 409
    assert "claimed by erin" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_have_exactly_one_winner(make_user, make_review):
    review = make_review()
    users = [make_user("reviewer") for _ in range(4)]
    barrier = threading.Barrier(len(users))
    results: list[str] = []

    def claim(user: User) -> None:
        client = Client()
        client.force_login(user)
        barrier.wait()
        response = client.post(reverse("review-claim", args=[review.pk]), follow=True)
        results.append("won" if "You claimed" in response.content.decode() else "lost")
        connections.close_all()

    threads = [threading.Thread(target=claim, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    review.refresh_from_db()
    assert sorted(results) == ["lost", "lost", "lost", "won"]
    assert review.status == ReviewRequest.Status.CLAIMED


def _walk(user, f, size: int) -> list[int]:
    """Every row of the inbox for filter `f`, page after page through the cursors."""
    from approvals import selectors

    seen, after = [], ""
    for _ in range(100):
        page = selectors.review_page(user, f, after, size)
        seen += [r.pk for r in page.object_list]
        if not page.has_next:
            return seen
        after = page.next_query["after"]
    raise AssertionError("the cursors never end")


@pytest.mark.parametrize("size", [2, 50])
def test_inbox_pages_walk_the_same_list_as_the_orm_query(size, make_user, make_review,
                                                         make_thread):
    """The inbox's fixed statements (selectors.review_page) list, page after page, exactly
    what `review_list` (the ORM query of the same filter) orders, for every filter."""
    from datetime import timedelta

    from django.utils import timezone

    from approvals import selectors

    me, other = make_user("reviewer", username="erin"), make_user("reviewer")
    now = timezone.now()
    expense, other_graph = make_thread(graph_name="expense"), make_thread(graph_name="web_review")
    variants = [
        {}, {"status": "claimed", "claimed_by": me}, {"status": "claimed", "claimed_by": other},
        {"assignee": "erin"}, {"assignee": "reviewer"}, {"assignee": "dave"},
        {"due_at": now - timedelta(hours=1)}, {"due_at": now + timedelta(hours=1)},
        {"status": "claimed", "claimed_by": me, "due_at": now - timedelta(minutes=5)},
        {"status": "decided"}, {"status": "decided", "due_at": now - timedelta(hours=2)},
        {"status": "cancelled"}, {"status": "superseded"},
    ]
    reviews = [make_review(thread=(expense, other_graph)[i % 2], **variants[i % len(variants)])
               for i in range(3 * len(variants))]
    # ties on the creation time: the id decides, on both sides of a page boundary
    ReviewRequest.objects.filter(pk__in=[r.pk for r in reviews[:5]]).update(
        created_at=reviews[0].created_at)
    for status in ("open", "pending", "claimed", "decided", "cancelled", "any"):
        for graph in ("", "expense"):
            for assignee in ("", "mine", "unassigned"):
                f = selectors.InboxFilter(graph=graph, status=status, assignee=assignee)
                expected = list(selectors.review_list(me, f).values_list("pk", flat=True))
                assert _walk(me, f, size) == expected, f
    rows = selectors.review_page(me, selectors.InboxFilter(status="any"), "", 50).object_list
    claimed = next(r for r in rows if r.claimed_by_id == me.pk)
    assert (claimed.claimed_by_name, claimed.graph_name) == ("erin", claimed.graph_name)
    assert claimed.thread_id in (expense.thread_id, other_graph.thread_id)
    assert all(r.created_at.tzinfo is not None for r in rows)


def test_inbox_counts_and_graphs_by_graph(make_review, make_thread):
    from approvals import selectors

    expense, other = make_thread(graph_name="expense"), make_thread(graph_name="web_review")
    make_thread(graph_name="")  # a thread of no graph names none
    make_thread(graph_name="expense")  # a graph is named once however many threads ran it
    for thread, status in [(expense, "pending"), (expense, "claimed"), (expense, "decided"),
                           (other, "pending"), (other, "superseded")]:
        make_review(thread=thread, status=status)
    assert selectors.review_counts("expense") == {
        "pending": 1, "claimed": 1, "decided": 1, "cancelled": 0, "superseded": 0, "open": 2}
    assert selectors.review_counts() == {
        "pending": 2, "claimed": 1, "decided": 1, "cancelled": 0, "superseded": 1, "open": 3}
    assert selectors.graph_names() == ["expense", "web_review"]
    # the inbox page reads both in one statement
    for graph in ("", "expense", "web_review", "none"):
        assert selectors.inbox_counts_and_graphs(graph) == (
            selectors.review_counts(graph), ["expense", "web_review"])


@pytest.mark.parametrize("text", ["short", "x" * 40, "y" * 41, "e\u0301" * 39 + "tail",
                                  "Cafe\u0301 " * 10, ""])
def test_inbox_title_truncation_is_truncatechars(text):
    from django.utils.text import Truncator

    from approvals.inbox_rows import _chars

    assert _chars(text, 40) == Truncator(text).chars(40)


def test_inbox_row_time_is_the_date_filters_local_iso_time(client_as, make_review, settings):
    from django.template.defaultfilters import date as date_filter
    from django.utils import timezone as tz

    settings.TIME_ZONE = "Asia/Kolkata"  # not UTC: the local time is what is printed
    review = make_review()
    with tz.override("Asia/Kolkata"):
        expected = date_filter(tz.template_localtime(review.created_at), "c")
    page = client_as("viewer").get(reverse("inbox")).content.decode()
    assert f'<time datetime="{expected}">' in page and "+05:30" in expected


@pytest.mark.parametrize("language", ["en", "de"])
def test_inbox_waiting_time_is_timesince_at_every_age(language):
    """The inbox's reused "waiting" texts (inbox_rows._timesince) are timesince's, at every
    age around the minute, hour, day, week and four-week boundaries, in the future, and
    past a month, whatever the language, when asked again (reused) as the first time."""
    from datetime import UTC, datetime, timedelta

    from django.utils import translation
    from django.utils.timesince import timesince

    from approvals.inbox_rows import _timesince

    now = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)
    ages = [timedelta(seconds=s) for s in (-5, 0, 1, 59, 60, 61, 119, 3599, 3600, 3661, 86399,
                                            86400, 90061, 604799, 604800, 694861)]
    ages += [timedelta(days=27, hours=23, minutes=59, seconds=59, microseconds=900_000),
             timedelta(days=28), timedelta(days=29, hours=3), timedelta(days=400),
             timedelta(seconds=59, microseconds=999_999)]
    with translation.override(language):
        for age in ages:
            for _ in range(2):
                got = _timesince(now - age, now, translation.get_language())
                assert got == timesince(now - age, now), age


def _row(response, pk: int) -> str:
    """The markup of review `pk`'s row in an inbox page ("" if it is not listed)."""
    import re

    html = response.content.decode()
    for row in re.findall(r"<tr>\n.*?</tr>", html, re.S):
        if f'href="/reviews/{pk}/' in row:
            return row
    return ""


def _page_token(response) -> str:
    """The masked CSRF token of the page's own forms (the bulk form's, outside the rows)."""
    import re

    return re.search(r'id="bulk-form".*?name="csrfmiddlewaretoken" value="([^"]+)"',
                     response.content.decode(), re.S).group(1)


def test_a_rows_markup_changes_at_once_when_its_review_does(make_user, make_review, client_as):
    """The rows' kept markup (approvals.inbox_rows._ROWS) is keyed by everything a row
    shows: a review claimed, released, reassigned, retitled, made overdue or decided reads
    differently on the very next page, with no wait and nothing to invalidate."""
    from datetime import timedelta

    from django.utils import timezone

    me, other = make_user("reviewer", username="mia"), make_user("reviewer", username="otto")
    mine, theirs = client_as(user=me), client_as(user=other)
    review = make_review()
    inbox = reverse("inbox")
    claim = f'action="{reverse("review-claim", args=[review.pk])}"'
    release = f'action="{reverse("review-unclaim", args=[review.pk])}"'
    assert claim in _row(mine.get(inbox), review.pk)

    theirs.post(reverse("review-claim", args=[review.pk]))
    row = _row(mine.get(inbox), review.pk)
    assert "status-claimed" in row and "by otto" in row
    assert claim not in row and release not in row
    assert release in _row(theirs.get(inbox), review.pk)

    theirs.post(reverse("review-unclaim", args=[review.pk]))
    row = _row(mine.get(inbox), review.pk)
    assert claim in row and "by otto" not in row and "status-pending" in row

    ReviewRequest.objects.filter(pk=review.pk).update(assignee="dave", title="Renamed")
    row = _row(mine.get(inbox), review.pk)
    assert '<td data-label="Assignee">dave</td>' in row and ">Renamed</a>" in row

    ReviewRequest.objects.filter(pk=review.pk).update(due_at=timezone.now() - timedelta(hours=1))
    assert "Overdue" in _row(mine.get(inbox), review.pk)

    ReviewRequest.objects.filter(pk=review.pk).update(status="decided")
    assert _row(mine.get(inbox), review.pk) == ""
    row = _row(mine.get(inbox, {"status": "decided"}), review.pk)
    assert "status-decided" in row and "Overdue" not in row and "<form" not in row


def test_one_viewers_row_never_shows_for_another(make_user, make_review, client_as):
    """A row kept for one viewer is never another's: who claimed it gets its Release form,
    another reviewer none, a viewer who may not decide neither checkbox nor form, and each
    page's forms carry that page's own CSRF token."""
    me = make_user("reviewer", username="mia")
    mine = client_as(user=me)
    claimed = make_review(status="claimed", claimed_by=me)
    pending = make_review()
    release = f'action="{reverse("review-unclaim", args=[claimed.pk])}"'
    inbox = reverse("inbox")

    first = mine.get(inbox)
    assert release in _row(first, claimed.pk)
    second = mine.get(inbox)  # the same rows again: their markup kept
    for page in (first, second):
        assert f'value="{_page_token(page)}"' in _row(page, pending.pk)
        assert f'value="{_page_token(page)}"' in _row(page, claimed.pk)
    assert _page_token(first) != _page_token(second)  # a fresh mask per response

    other = client_as("reviewer").get(inbox)
    row = _row(other, claimed.pk)
    assert "by mia" in row and release not in row and "<form" not in row
    assert 'name="reviews"' in row
    assert f'value="{_page_token(other)}"' in _row(other, pending.pk)

    viewer = client_as("viewer").get(inbox)
    for pk in (claimed.pk, pending.pk):
        row = _row(viewer, pk)
        assert row and "<form" not in row and 'name="reviews"' not in row
        assert "csrfmiddlewaretoken" not in row

    # and the other way round: another's page first, then the claimer's
    claimed.refresh_from_db()
    fresh = make_review(status="claimed", claimed_by=make_user("reviewer", username="zed"))
    assert "<form" not in _row(mine.get(inbox), fresh.pk)
    assert "Release" in _row(client_as(user=fresh.claimed_by).get(inbox), fresh.pk)
