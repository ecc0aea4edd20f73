"""Demo users for each role and a few threads stopped at reviews, plus one failed run.

Idempotent: users and threads that exist are left as they are.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from orchestration.runtime.models import Thread
from orchestration.runtime.runs import run_inline, start_thread

PASSWORD = "stepwise-demo"  # noqa: S105 - published demo credentials, printed below
USERS = [
    # username, group, first name, is_staff (Django admin access)
    ("rita", "reviewer", "Rita", False),
    ("otto", "ops", "Otto", False),
    ("ada", "admin", "Ada", True),
    ("vic", "viewer", "Vic", False),
]

EXPENSES = [
    (101, "Alice Martin", "Office Depot", "42.50", "Printer paper and toner"),
    (102, "Bob Keller", "Lufthansa", "1250.00", "Flight to the Berlin customer workshop"),
    (103, "Carol Diaz", "Hilton Berlin", "640.00", "Three nights, Berlin workshop"),
    (104, "Dan Okafor", "Shady Supplies Ltd", "75.00", "USB cables"),
]

ARTICLES = [
    ("Ten tips for teh perfect remote stand-up", "Maya Chen",
     "Keep it short. Everyone should recieve the agenda before the call, and teh notes after. "
     "Use a timer; definately rotate who runs it."),
    ("Our guaranteed risk-free onboarding", "Liam Novak",
     "New customers get a guaranteed go-live in two weeks with a risk-free trial. Our team "
     "walks you through every step, from import to the first report, and stays on call for "
     "the first month so nothing is left to chance."),
]


TICKETS = [
    # thread number, customer, message: the first pauses at a refund for review, the second
    # (same customer, a later thread) is greeted with what the first one remembered
    (1, "c-42", "My order A-1001 arrived damaged, I want a refund. Please email me."),
    (2, "c-42", "Where is my order A-1002?"),
]


class Command(BaseCommand):
    help = "Create demo users (password 'stepwise-demo') and demo threads waiting for review."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-threads", action="store_true", help="only create the users")

    def handle(self, *args: Any, no_threads: bool, **options: Any) -> None:
        users = self.create_users()
        if not no_threads:
            self.start_threads(users["ada"])
        self.stdout.write(self.style.SUCCESS("Demo logins (password: stepwise-demo):"))
        for username, group, _, _ in USERS:
            self.stdout.write(f"  {username:<5} {group}")

    @transaction.atomic
    def create_users(self) -> dict[str, Any]:
        from django.contrib.auth.models import Permission

        from approvals.roles import ensure_roles

        # The migrations create the role groups; a database emptied since (`manage.py flush`)
        # has none, and a group made here without its permissions would lock its users out.
        ensure_roles(Group, Permission)
        user_model = get_user_model()
        users = {}
        for username, group_name, first_name, staff in USERS:
            user, created = user_model.objects.get_or_create(
                username=username,
                defaults={"first_name": first_name, "is_staff": staff, "is_superuser": staff,
                          "email": f"{username}@example.com"},
            )
            if created:
                user.set_password(PASSWORD)
                user.save(update_fields=["password"])
            group, _ = Group.objects.get_or_create(name=group_name)
            user.groups.add(group)
            users[username] = user
        return users

    def start_threads(self, user: Any) -> None:
        # Run in this process so the inbox is populated as soon as the command returns,
        # whether or not a worker is running.
        with run_inline():
            for expense_id, employee, vendor, amount, description in EXPENSES:
                self.start(
                    f"demo-expense-{expense_id}", "expense", user,
                    f"Expense #{expense_id}: {description}",
                    {"expense_id": expense_id, "employee": employee, "vendor": vendor,
                     "amount": Decimal(amount), "description": description},
                )
            for number, (title, author, body) in enumerate(ARTICLES, start=1):
                self.start(f"demo-article-{number}", "publishing", user, title,
                           {"title": title, "author": author, "body": body})
            for number, customer, message in TICKETS:
                self.start(f"demo-support-{number}", "support", user,
                           f"Support: {customer} — {message[:40]}",
                           {"customer": customer, "message": message})
            # an agent written for LangChain's Agent Inbox, answered on Stepwise's review page
            self.start("demo-email-agent-1", "email_agent", user, "Reply to Mia about the kickoff",
                       {"sender": "Mia Wong", "sender_email": "mia@example.com",
                        "subject": "Project kickoff",
                        "message": "Could we meet next week to plan the kickoff?"})

    def start(self, thread_id: str, graph: str, user: Any, title: str, input: Any) -> None:
        if Thread.objects.filter(thread_id=thread_id).exists():
            self.stdout.write(f"  {thread_id}: exists, left as is")
            return
        run = start_thread(graph, input, user=user, title=title, thread_id=thread_id)
        run.refresh_from_db()
        self.stdout.write(f"  {thread_id}: run {run.pk} {run.status}")
