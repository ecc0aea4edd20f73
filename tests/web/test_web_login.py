"""Login throttling (django-axes): repeated wrong passwords lock a username out from that
address, the right password included, until the cool-off passes or an admin resets it."""

from __future__ import annotations

import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse


@pytest.fixture
def user(make_user):
    return make_user("reviewer", username="alice")


def attempt(password: str, address: str = "10.0.0.1", username: str = "alice") -> object:
    client = Client(REMOTE_ADDR=address)
    response = client.post(reverse("login"), {"username": username, "password": password})
    response.logged_in = "_auth_user_id" in client.session
    return response


def lock_out(address: str = "10.0.0.1") -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        assert not attempt("wrong", address).logged_in


def test_the_right_password_logs_in(user):
    response = attempt("pw")
    assert response.status_code == 302
    assert response.logged_in


def test_the_right_password_after_too_many_wrong_ones_is_refused_with_a_clear_message(user):
    lock_out()
    response = attempt("pw")
    assert response.status_code == 429
    assert not response.logged_in
    page = response.content.decode()
    assert "Too many failed logins for “alice”" in page
    assert "even with the right password" in page


def test_thirty_wrong_passwords_then_the_right_one_does_not_log_in(user):
    for _ in range(30):
        attempt("wrong")
    assert not attempt("pw").logged_in


def test_lockout_is_per_username_and_address(user, make_user):
    make_user("reviewer", username="bob")
    lock_out("10.0.0.1")
    assert attempt("pw", address="10.0.0.2").logged_in
    assert attempt("pw", address="10.0.0.1", username="bob").logged_in


def test_login_works_again_after_the_cool_off(user):
    lock_out()
    hours = float(settings.AXES_COOLOFF_TIME)
    AccessAttempt.objects.update(
        attempt_time=dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours, minutes=1)
    )
    assert attempt("pw").logged_in


def test_an_admin_reset_lifts_the_lockout(user):
    lock_out()
    call_command("axes_reset_username", "alice")
    assert attempt("pw").logged_in
