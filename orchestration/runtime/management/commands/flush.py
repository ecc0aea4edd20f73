"""`manage.py flush`, audit trail included: Django's flush run inside `audit_unlocked`.

Emptying the whole database is the one sanctioned way to remove append-only audit rows
(`orchestration.runtime.audit`); test suites flush between transactional tests.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush

from orchestration.runtime.audit import audit_unlocked


class Command(flush.Command):
    help = (
        f"{flush.Command.help} The append-only audit trail (events, decisions) is removed "
        "with everything else."
    )

    def handle(self, **options: Any) -> None:
        with audit_unlocked(options["database"]):
            super().handle(**options)
