"""Without the auth cache (approvals.authrows): a request reads the signed-in user and
everything they may do in two fixed statements, the same permissions Django's ModelBackend
finds, and nothing is kept between requests, so a change made by any process counts at once."""

from __future__ import annotations

import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.access import group_names
from approvals.authcache import CachedModelBackend, load_user


@pytest.fixture(autouse=True)
def _auth_cache_off(settings):
    settings.STEPWISE_AUTH_CACHE = False


def auth_statements(client) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        status = client.get("/").status_code
    return status, [q["sql"] for q in ctx.captured_queries if 'FROM "auth_' in q["sql"]]


def test_a_page_reads_the_user_and_their_permissions_in_two_statements(client_as):
    status, statements = auth_statements(client_as("reviewer"))
    assert status == 200
    assert len(statements) == 2, statements
    assert "UNION ALL" in statements[1]


def test_the_permissions_and_group_names_are_djangos(make_user):
    user = make_user("reviewer")
    user.groups.add(Group.objects.get(name="ops"))
    user.user_permissions.add(Permission.objects.get(codename="fork_thread"))
    ours = load_user(user.pk)
    theirs = type(user).objects.get(pk=user.pk)
    django = ModelBackend()
    backend = CachedModelBackend()
    assert backend.get_all_permissions(ours) == django.get_all_permissions(theirs)
    assert ours._user_perm_cache == django.get_user_permissions(theirs) == {"approvals.fork_thread"}
    assert ours._group_perm_cache == django.get_group_permissions(theirs)
    assert group_names(ours) == {"reviewer", "ops"}
    assert ours.get_session_auth_hash() == theirs.get_session_auth_hash()


def test_a_superuser_and_an_inactive_user_keep_djangos_answers(make_user):
    admin = make_user(None, is_superuser=True)
    assert CachedModelBackend().get_all_permissions(
        load_user(admin.pk)
    ) == ModelBackend().get_all_permissions(type(admin).objects.get(pk=admin.pk))
    gone = make_user("reviewer", is_active=False)
    assert load_user(gone.pk) is None
    assert load_user("not a number") is None


def test_a_removal_no_signal_announced_refuses_the_next_request(client_as, make_user):
    # what another server process's change looks like from here: the rows change and no
    # signal fires in this process
    user = make_user("reviewer")
    client = client_as(user=user)
    assert client.get("/").status_code == 200
    table = type(user).groups.through._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f'DELETE FROM "{table}" WHERE user_id = %s', [user.pk])  # noqa: S608
    assert client.get("/").status_code == 403
