"""`manage.py create_api_token USERNAME [--name NAME]`: print a new API token, once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from approvals.api.tokens import issue_token


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for.")

    def handle(self, *args: Any, username: str, name: str, **options: Any) -> None:
        model = get_user_model()
        try:
            user = model.objects.get(**{model.USERNAME_FIELD: username})
        except model.DoesNotExist:
            raise CommandError(
                f"There is no user {username!r}; create one first (manage.py createsuperuser)."
            ) from None
        token, raw = issue_token(user, name)
        self.stderr.write(f"Token {token.prefix}… for {username}; it is not shown again.")
        self.stdout.write(raw)
