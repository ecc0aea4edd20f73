"""Expense approval: policy check, small amounts auto-approved, large ones reviewed by a person
(who may edit the amount), then payout. Paying a flagged vendor fails, so ops have a failed
run to look at: fork it at the payout with `compliance_override=True`, or retry it.

`payout` has side effects: it pays through the demo ledger with its `task_key()`, so a branch
that replays it (a re-decision, a fork) does not pay twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field

from demo import ledger
from orchestration import END, StateGraph, interrupt, task_key
from orchestration.reducers import topic

AUTO_APPROVE_LIMIT = Decimal("100.00")
# What the ledger's column holds (`demo.models.Payout.amount`, 12 digits, 2 after the point):
# an amount beyond it is refused where it comes in (the API, the "New run" form, a fork, the
# review's edit), not by the payout after someone approved it. Unbounded, "1E+9999" went in
# and the run failed at the review, whose payload had no JSON number for it.
Amount = Annotated[Decimal, Field(max_digits=12, decimal_places=2)]
MAX_AMOUNT = Decimal("9999999999.99")
FLAGGED_VENDORS = frozenset({"Shady Supplies Ltd"})


class PayoutRefused(Exception):  # noqa: N818 - reads as the business outcome it is
    pass


@dataclass
class Expense:
    expense_id: int = 0
    employee: str = ""
    vendor: str = ""
    amount: Amount = Decimal("0")
    currency: str = "EUR"
    description: str = ""
    policy_notes: Annotated[list[str], topic] = field(default_factory=list)
    decision: str = ""
    reviewer: str = ""
    comment: str = ""
    payout_ref: str = ""
    compliance_override: bool = False


@dataclass
class ExpenseClaim:
    """What a caller gives to start an expense (`input_schema`): the employee's claim only.
    The decision, reviewer, payout and `compliance_override` belong to the graph (and to ops,
    through a fork), so a caller cannot approve its own expense or skip the compliance check."""

    employee: str
    vendor: str
    amount: Amount
    description: str = ""
    currency: str = "EUR"
    expense_id: int = 0


def money(amount: Decimal, currency: str = "EUR") -> str:
    symbol = {"EUR": "€", "USD": "$", "GBP": "£"}.get(currency, f"{currency} ")
    return f"{symbol}{amount:,.2f}"


def check_policy(state: Expense) -> dict[str, Any]:
    notes: list[str] = []
    amount = Decimal(state.amount)
    if amount <= 0:
        return {"policy_notes": ["amount must be positive"], "decision": "rejected",
                "reviewer": "policy", "comment": "Rejected by policy: amount must be positive."}
    if not state.description.strip():
        notes.append("no description given")
    if state.vendor in FLAGGED_VENDORS:
        notes.append(f"vendor {state.vendor!r} is on the compliance watch list")
    if amount > AUTO_APPROVE_LIMIT:
        notes.append(f"over the auto-approval limit of {money(AUTO_APPROVE_LIMIT)}")
    return {"policy_notes": notes or ["within policy"], "amount": amount}


def after_policy(state: Expense) -> str:
    if state.decision == "rejected":
        return END
    return "review" if Decimal(state.amount) > AUTO_APPROVE_LIMIT else "auto_approve"


def auto_approve(state: Expense) -> dict[str, Any]:
    return {"decision": "approved", "reviewer": "policy",
            "comment": f"Auto-approved: at most {money(AUTO_APPROVE_LIMIT)}."}


def review(state: Expense) -> dict[str, Any]:
    answer = interrupt(review_request(state))
    action = answer.get("action")
    reviewer = str(answer.get("reviewer", ""))
    comment = str(answer.get("comment", ""))
    if action == "reject":
        return {"decision": "rejected", "reviewer": reviewer, "comment": comment}
    update: dict[str, Any] = {"decision": "approved", "reviewer": reviewer, "comment": comment}
    if action == "edit":
        values = answer.get("values") or {}
        if "amount" in values:
            update["amount"] = Decimal(str(values["amount"])).quantize(Decimal("0.01"))
    return update


def expense_title(state: Expense, amount: str) -> str:
    """"Approve expense #12 (€1,250.00)"; an expense started without a number (the API, the
    "New run" form) is named by who claims it and what for, never "#0"."""
    if state.expense_id:
        return f"Approve expense #{state.expense_id} ({amount})"
    what = " ".join(state.description.split())
    if len(what) > 60:
        what = what[:59].rstrip() + "…"
    by = f" by {state.employee}" if state.employee else ""
    return f"Approve expense{by}{f': {what}' if what else ''} ({amount})"


def review_request(state: Expense) -> dict[str, Any]:
    """The review payload (see brief): JSON only, amounts as numbers the form can edit."""
    amount = money(Decimal(state.amount), state.currency)
    return {
        "kind": "review",
        "title": expense_title(state, amount),
        "description": (
            f"{state.employee} claims {amount} paid to "
            f"{state.vendor}. Check the receipt matches the description and the amount is "
            "reasonable; you may correct the amount before approving."
        ),
        "data": {
            "expense_id": state.expense_id,
            "employee": state.employee,
            "vendor": state.vendor,
            "amount": float(state.amount),
            "currency": state.currency,
            "description": state.description,
            "policy_notes": list(state.policy_notes),
        },
        "actions": ["approve", "reject", "edit"],
        # how the review page shows `data` (titles, formats); `schema` is what may be edited
        "data_schema": {
            "type": "object",
            "properties": {
                "amount": {"type": "number", "title": "Amount", "format": "money",
                           "x-currency-field": "currency"},
                "employee": {"type": "string", "title": "Employee"},
                "vendor": {"type": "string", "title": "Paid to"},
                "description": {"type": "string", "title": "What for"},
                "policy_notes": {"type": "array", "title": "Policy check",
                                 "items": {"type": "string"},
                                 "description": "Findings of the automatic *policy* check."},
                "expense_id": {"type": "integer", "title": "Expense number"},
                "currency": {"type": "string", "title": "Currency"},
            },
        },
        "schema": {
            "type": "object",
            "properties": {
                "amount": {"type": "number", "title": f"Amount ({state.currency})",
                           "exclusiveMinimum": 0, "maximum": float(MAX_AMOUNT),
                           "multipleOf": 0.01},
            },
            "required": ["amount"],
        },
        "assignee": "reviewer",
    }


def after_review(state: Expense) -> str:
    return "payout" if state.decision == "approved" else END


def payout(state: Expense) -> dict[str, Any]:
    if state.vendor in FLAGGED_VENDORS and not state.compliance_override:
        raise PayoutRefused(
            f"payout to {state.vendor!r} refused: the vendor is on the compliance watch list. "
            "After compliance clears it, fork this thread before 'payout' with "
            "compliance_override=true."
        )
    amount = Decimal(state.amount).quantize(Decimal("0.01"))
    # The task key is the same when a branch replays this payout ("decide differently", a
    # fork), so the ledger recognises it and pays nothing a second time.
    entry, _ = ledger.pay(task_key(), state.expense_id, amount, state.currency)
    return {"payout_ref": entry.reference}


def build() -> Any:
    builder = StateGraph(Expense, input_schema=ExpenseClaim)
    builder.add_node("check_policy", check_policy)
    builder.add_node("auto_approve", auto_approve)
    builder.add_node("review", review)
    builder.add_node("payout", payout, side_effects=True)
    builder.set_entry_point("check_policy")
    builder.add_conditional_edges("check_policy", after_policy, ["auto_approve", "review", END])
    builder.add_edge("auto_approve", "payout")
    builder.add_conditional_edges("review", after_review, ["payout", END])
    builder.add_edge("payout", END)
    return builder.compile()


graph = build()
