"""The threads search (`thread_search`, migration 0016): a case-insensitive substring of a
thread's id or title, answered from an index on both databases, with the same threads as the
`icontains` scan it replaced; kept right as threads are created, renamed and deleted."""

from __future__ import annotations

import pytest
import shown
from django.db import connection
from django.test import Client
from django.urls import reverse

from approvals import selectors
from orchestration.runtime import thread_search
from orchestration.runtime.models import Thread
from orchestration.runtime.thread_search import FTS, threads_matching

TITLES = {
    "exp-0001": "Expense 42 for Ada",
    "exp-0002": "expense 420, second try",
    "hire-7": "Hiring plan",
    "q-1": 'Say "yes" twice',
    "pct-1": "100% done",
    "und-1": "under_score",
    "und-2": "underXscore",
    "uni-1": "Résumé review",
    "Mixed-Case-ID": "",
}
SEARCHES = [
    "expense", "EXPENSE", "Ense 42", "se 420", "ad", "a", "42", "exp-", "EXP-000",
    '"yes"', 'y "yes', "100%", "0%", "r_s", "_", "résumé", "Résumé", "mixed-case", "-CASE-",
    "xyz", "plan", "  plan", "hiring plan",
]


def _expected(text: str) -> list[str]:
    low = text.lower()
    return sorted(tid for tid, title in TITLES.items()
                  if low in tid.lower() or low in title.lower())


@pytest.fixture
def titled(make_thread) -> None:
    for thread_id, title in TITLES.items():
        make_thread(thread_id=thread_id, title=title)


def _found(text: str) -> list[str]:
    return sorted(threads_matching(Thread.objects.all(), text).values_list("thread_id", flat=True))


@pytest.mark.django_db
@pytest.mark.parametrize("text", SEARCHES)
@pytest.mark.parametrize("common_above", [thread_search.MOST_FROM_INDEX, 1],
                         ids=["from the index", "common text: the scan"])
def test_search_finds_what_a_substring_scan_finds(
    titled, text: str, common_above: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(thread_search, "MOST_FROM_INDEX", common_above)
    assert _found(text) == _expected(text)


@pytest.mark.django_db
def test_renamed_and_deleted_threads_are_found_by_what_they_hold_now(titled, make_thread) -> None:
    thread = Thread.objects.get(thread_id="hire-7")
    thread.title = "Budget review"
    thread.save()
    assert _found("hiring") == []
    assert _found("budget") == ["hire-7"]
    thread.status = Thread.Status.DONE  # a save that keeps the text
    thread.save()
    assert _found("budget") == ["hire-7"]
    Thread.objects.filter(thread_id="hire-7").update(thread_id="hire-8")
    assert _found("hire-7") == []
    assert _found("hire-8") == ["hire-8"]
    Thread.objects.filter(thread_id__startswith="exp-").delete()
    assert _found("expense") == []
    make_thread(thread_id="exp-9", title="Expense again")
    assert _found("expense") == ["exp-9"]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:  # raises if the index disagrees with the table
            cursor.execute(f"INSERT INTO {FTS} ({FTS}, rank) VALUES ('integrity-check', 1)")  # noqa: S608


@pytest.mark.django_db
def test_the_index_is_kept_by_triggers_after_every_migration() -> None:
    """A migration that rebuilds the thread table on SQLite (the schema editor copies the
    table, not its triggers) would leave the search index behind, silently."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's trigram indexes are ordinary indexes of the table")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
                       [Thread._meta.db_table])
        names = {name for (name,) in cursor.fetchall()}
    assert {f"{FTS}_insert", f"{FTS}_delete", f"{FTS}_update"} <= names


@pytest.mark.django_db
def test_the_search_asks_the_index_and_reads_the_threads_it_names(titled) -> None:
    page = selectors.thread_list("expense")
    assert sorted(page.values_list("thread_id", flat=True)) == ["exp-0001", "exp-0002"]
    sql, params = page.query.sql_with_params()
    assert "LIKE" not in sql.upper(), sql  # no scan: the threads by their keys
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = " / ".join(str(row[-1]) for row in cursor.fetchall()).replace('"', "")
            assert f"SEARCH {Thread._meta.db_table} USING INTEGER PRIMARY KEY" in plan, plan
            assert f"SCAN {Thread._meta.db_table}" not in plan, plan
            cursor.execute(f"EXPLAIN QUERY PLAN {thread_search._SQLITE_FOUND}",
                           [thread_search.phrase("expense"), 10])
            plan = " / ".join(str(row[-1]) for row in cursor.fetchall())
            assert "VIRTUAL TABLE INDEX" in plan, plan
        else:
            # A table this small is cheaper to read whole: the planner is asked whether the
            # indexes serve the question's expressions at all.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {thread_search._PG_FOUND}", ["%expense%", "%expense%", 10])
            plan = " / ".join(row[0] for row in cursor.fetchall())
            assert "thread_search_title" in plan and "thread_search_id" in plan, plan


@pytest.mark.django_db
def test_a_short_text_reads_the_table_once_and_a_common_one_is_scanned(titled,
                                                                       monkeypatch) -> None:
    # two characters: no trigram; the keys come from one read of the table
    short = selectors.thread_list("ad")
    assert "LIKE" not in str(short.query).upper()
    assert sorted(short.values_list("thread_id", flat=True)) == _expected("ad")
    monkeypatch.setattr(thread_search, "MOST_FROM_INDEX", 1)
    common = selectors.thread_list("expense")
    assert "LIKE" in str(common.query).upper()
    assert sorted(common.values_list("thread_id", flat=True)) == ["exp-0001", "exp-0002"]


def test_the_threads_page_and_its_filters_use_the_search(client_as, titled, make_thread) -> None:
    make_thread(thread_id="exp-done", title="Expense closed", status=Thread.Status.DONE)
    client = client_as("viewer")
    url = reverse("threads")
    assert sorted(shown.thread_ids(client.get(url, {"q": "EXPENSE"}))) == [
        "exp-0001", "exp-0002", "exp-done"]
    assert shown.thread_ids(client.get(url, {"q": "expense", "status": "done"})) == ["exp-done"]
    assert shown.thread_ids(client.get(url, {"q": '"yes"'})) == ["q-1"]


def test_the_admin_search_matches_every_word(make_user, titled) -> None:
    client = Client()
    client.force_login(make_user("admin", is_superuser=True, is_staff=True))
    url = reverse("admin:orchestration_thread_changelist")
    page = client.get(url, {"q": "expense ada"}).content.decode()
    assert "exp-0001" in page and "exp-0002" not in page
    page = client.get(url, {"q": '"expense 420"'}).content.decode()
    assert "exp-0002" in page and "exp-0001" not in page
