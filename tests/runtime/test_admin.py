"""The Django admin shows threads, runs, the checkpoint tree (read-only) and events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from orchestration.runtime.models import Checkpoint, Event, Run
from orchestration.runtime.runs import run_inline, start_thread

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def paused_run() -> Run:
    with run_inline():
        run = start_thread("expense", {"expense_id": 5, "employee": "Ann", "vendor": "Rail",
                                       "amount": Decimal("300.00"), "description": "train"},
                           user=None)
    run.refresh_from_db()
    return run


def test_checkpoint_page_links_parent_and_refuses_changes(admin_client: Any,
                                                         paused_run: Run) -> None:
    child = Checkpoint.objects.filter(thread=paused_run.thread, parent__isnull=False).first()
    url = reverse("admin:orchestration_checkpoint_change", args=[child.pk])
    page = admin_client.get(url).content.decode()
    parent_url = reverse("admin:orchestration_checkpoint_change", args=[child.parent_id])
    assert parent_url in page
    parent_page = admin_client.get(parent_url).content.decode()
    assert url in parent_page  # the parent lists its children (branches)
    response = admin_client.post(url, {"step": 99})
    assert response.status_code == 403
    child.refresh_from_db()
    assert child.step != 99


@pytest.mark.parametrize("model", ["thread", "run", "checkpoint", "event"])
def test_changelists_render(admin_client: Any, paused_run: Run, model: str) -> None:
    response = admin_client.get(reverse(f"admin:orchestration_{model}_changelist"))
    assert response.status_code == 200


def test_run_page_links_its_thread(admin_client: Any, paused_run: Run) -> None:
    page = admin_client.get(
        reverse("admin:orchestration_run_change", args=[paused_run.pk])
    ).content.decode()
    assert reverse("admin:orchestration_thread_change", args=[paused_run.thread_id]) in page
    assert Event.objects.filter(run=paused_run).exists()


def test_a_store_item_page_shows_each_field_once(admin_client: Any) -> None:
    # QA: the item page showed Namespace twice (the raw field and the readable one)
    from orchestration.runtime.models import StoreItem
    from orchestration.savers import DjangoStore

    DjangoStore().put(("customers", "c-42"), "tea", {"fact": "likes green tea"})
    item = StoreItem.objects.get(key="tea")
    page = admin_client.get(
        reverse("admin:orchestration_storeitem_change", args=[item.pk])).content.decode()
    import re

    rows = re.findall(r'class="form-row field-([\w]+)', page)
    assert rows.count("namespace_labels") == 1 and "namespace" not in rows, rows
    assert "customers / c-42" in page and "likes green tea" in page


def test_admins_browse_and_search_the_store_by_namespace(admin_client: Any) -> None:
    from orchestration.savers import DjangoStore

    store = DjangoStore()
    store.put(("customers", "c-42"), "tea", {"fact": "likes green tea"})
    store.put(("customers", "c-7"), "dog", {"fact": "has a dog"})
    store.put(("other",), "x", {"fact": "unrelated"})
    url = reverse("admin:orchestration_storeitem_changelist")
    page = admin_client.get(url).content.decode()
    assert "customers / c-42" in page and "likes green tea" in page and "unrelated" in page
    found = admin_client.get(url, {"q": "customers.c-42"}).content.decode()
    assert "likes green tea" in found and "has a dog" not in found
    top = admin_client.get(url, {"ns": "customers"}).content.decode()
    assert "has a dog" in top and "unrelated" not in top
    assert admin_client.get(reverse("admin:orchestration_storeitem_add")).status_code == 403


def test_threads_are_not_added_in_the_admin(admin_client: Any) -> None:
    """The add form saved a thread without id or graph; /threads/ then failed for everyone
    (NoReverseMatch on the empty id)."""
    from orchestration.runtime.models import Thread

    listing = admin_client.get(reverse("admin:orchestration_thread_changelist")).content.decode()
    assert reverse("admin:orchestration_thread_add") not in listing
    assert admin_client.get(reverse("admin:orchestration_thread_add")).status_code == 403
    assert admin_client.post(reverse("admin:orchestration_thread_add"),
                             {"title": "Admin-made thread"}).status_code == 403
    assert not Thread.objects.filter(title="Admin-made thread").exists()
    assert admin_client.get("/threads/").status_code == 200
