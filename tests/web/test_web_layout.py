"""The layout's header and static tags are kept per process (approvals/layout.py): a kept
header is never another user's, another section's or an outdated one, and its CSRF input is
the page's own."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from approvals import layout

pytestmark = pytest.mark.django_db


def header(client: Client, path: str = "/", **extra: Any) -> str:
    html = client.get(path, **extra).content.decode()
    return html[html.index('<header class="top">') : html.index("</header>")]


def nav_links(html: str) -> list[str]:
    return re.findall(r">([A-Za-z ]+)</a>", html[html.index("<nav") : html.index("</nav>")])


def test_the_header_follows_the_users_groups_both_ways(make_user):
    user = make_user("reviewer")
    client = Client()
    client.force_login(user)
    assert nav_links(header(client)) == ["Inbox", "Threads"]
    user.groups.add(Group.objects.get(name="ops"))
    assert nav_links(header(client)) == ["Inbox", "Threads", "New run", "Ops"]
    user.groups.remove(Group.objects.get(name="ops"))
    assert nav_links(header(client)) == ["Inbox", "Threads"]


def test_the_header_follows_a_groups_permissions(make_user):
    from django.contrib.auth.models import Permission

    client = Client()
    client.force_login(make_user("reviewer"))
    assert "Ops" not in nav_links(header(client))
    Group.objects.get(name="reviewer").permissions.add(Permission.objects.get(codename="view_ops"))
    assert "Ops" in nav_links(header(client))


def test_the_header_follows_the_staff_flag_and_the_username(make_user):
    user = make_user("reviewer", username="first-name")
    client = Client()
    client.force_login(user)
    assert "Admin" not in nav_links(header(client))
    user.is_staff = True
    user.username = "second-name"
    user.save()
    client.force_login(user)
    html = header(client)
    assert "Admin" in nav_links(html)
    assert '<span class="who">second-name</span>' in html and "first-name" not in html


def test_two_users_on_the_same_page_each_get_their_own_header(make_user):
    reviewer, ops = Client(), Client()
    reviewer.force_login(make_user("reviewer", username="rita-layout"))
    ops.force_login(make_user("ops", username="otto-layout"))
    for _ in range(2):
        mine, theirs = header(reviewer), header(ops)
        assert "rita-layout" in mine and "otto-layout" not in mine
        assert "otto-layout" in theirs and "Ops" in nav_links(theirs)
        assert "Ops" not in nav_links(mine)


def test_the_current_section_follows_the_page(make_user):
    client = Client()
    client.force_login(make_user("ops"))

    def current(path: str) -> list[str]:
        return re.findall(r'aria-current="page">([A-Za-z ]+)<', header(client, path))

    assert current(reverse("inbox")) == ["Inbox"]
    assert current(reverse("threads")) == ["Threads"]
    assert current(reverse("ops")) == ["Ops"]
    assert current("/no/such/page/") == []
    assert current(reverse("inbox")) == ["Inbox"]


def test_a_kept_header_carries_the_pages_own_csrf_token(make_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("reviewer"))
    seen = []
    for _ in range(2):
        html = client.get(reverse("inbox")).content.decode()
        logout = re.search(
            r'action="/accounts/logout/">\s*<input type="hidden" '
            r'name="csrfmiddlewaretoken" value="([^"]+)">',
            html,
        )
        assert logout is not None
        assert logout.group(1) == re.search(r'"X-CSRFToken": "([^"]+)"', html).group(1)
        seen.append(logout.group(1))
    assert seen[0] != seen[1]  # each response masks afresh
    assert client.post(reverse("logout"), {"csrfmiddlewaretoken": seen[1]}).status_code == 302


def test_the_headers_urls_follow_the_script_prefix(make_user):
    from django.urls import set_script_prefix

    client = Client()
    client.force_login(make_user("reviewer"))
    assert 'href="/threads/"' in header(client)
    set_script_prefix("/sub/")
    try:
        assert 'href="/sub/threads/"' in header(client)
    finally:
        set_script_prefix("/")
    assert 'href="/threads/"' in header(client)


def test_a_signed_out_page_has_no_nav_and_no_form(client):
    html = header(client, reverse("login"))
    assert "<nav" not in html and "<form" not in html
    assert 'href="/"' in html


def test_nothing_is_kept_when_templates_reload(make_user, settings):
    from django.template import engines

    env = engines["jinja2"].env
    client = Client()
    client.force_login(make_user("reviewer"))
    layout.forget_all()
    reloading = env.auto_reload
    env.auto_reload = True
    try:
        assert "Threads" in nav_links(header(client))
        assert not layout._HEADERS and not layout._HEAD_KEPT
    finally:
        env.auto_reload = reloading
    header(client)
    assert layout._HEADERS and layout._HEAD_KEPT


def test_the_static_tags_follow_a_settings_change(client, settings):
    before = client.get(reverse("login")).content.decode()
    assert 'href="/static/' in before
    settings.STATIC_URL = "/assets/"
    after = client.get(reverse("login")).content.decode()
    assert 'href="/assets/' in after and 'href="/static/' not in after


def test_a_message_shows_in_the_layout_once(make_user):
    client = Client()
    client.force_login(make_user("reviewer"))
    saved = client.post(reverse("notifications"), {"review_requests": "on"}, follow=True)
    html = saved.content.decode()
    expected = '<main id="main">\n    \n<ul class="messages" role="status">\n  '
    assert expected + '<li class="msg msg-success">Saved.</li>\n</ul>\n' in html
    assert '<ul class="messages"' not in client.get(reverse("notifications")).content.decode()
