"""An email assistant written for LangChain's Agent Inbox: it drafts a reply, then pauses with
a `HumanInterrupt` asking to run its `send_email` tool, and reads the first `HumanResponse`
of the answer (`interrupt(request)[0]`), exactly as an Agent Inbox agent does. Stepwise's
review page offers the actions the request's config allows and answers in that shape.

accept sends the draft, edit sends the edited args, a response redrafts with the reviewer's
feedback and asks again, ignore drops the email. `send_email` acts outside the graph (it
records the email in the demo ledger's outbox), so it is declared with side effects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from orchestration import END, StateGraph, interrupt
from orchestration.reducers import topic


@dataclass
class EmailTask:
    sender: str = ""
    sender_email: str = ""
    subject: str = ""
    message: str = ""
    draft: str = ""
    feedback: Annotated[list[str], topic] = field(default_factory=list)
    outcome: str = ""
    sent: dict[str, Any] = field(default_factory=dict)


@dataclass
class IncomingEmail:
    """What a caller gives to start (`input_schema`): the draft and the outcome are the
    agent's own."""

    sender: str
    sender_email: str
    subject: str
    message: str


def draft_reply(state: EmailTask) -> dict[str, Any]:
    greeting = f"Hi {state.sender.split(' ')[0] or 'there'},"
    body = ("Thanks for your message. Tuesday at 10:00 works for me; I will send an invite "
            "with the agenda.")
    if state.feedback:
        body += f"\n\n(Revised: {state.feedback[-1]})"
    return {"draft": f"{greeting}\n\n{body}\n\nBest regards,\nRita"}


def ask_human(state: EmailTask) -> dict[str, Any]:
    request = {
        "action_request": {
            "action": "send_email",
            "args": {"to": state.sender_email, "subject": f"Re: {state.subject}",
                     "body": state.draft},
        },
        "config": {"allow_ignore": True, "allow_respond": True, "allow_edit": True,
                   "allow_accept": True},
        "description": (
            f"## Reply to {state.sender}\n\n"
            f"**{state.sender}** wrote about *{state.subject}*:\n\n> {state.message}\n\n"
            "The assistant drafted the reply below. **Accept** sends it, **edit** the "
            "arguments to change it, **respond** with feedback for a new draft, or "
            "**ignore** to send nothing."
        ),
    }
    response = interrupt(request)[0]  # Agent Inbox answers with a list of responses
    kind = response["type"]
    if kind == "accept":
        return {"outcome": "send", "sent": dict(response["args"]["args"])}
    if kind == "edit":
        return {"outcome": "send", "sent": dict(response["args"]["args"])}
    if kind == "response":
        return {"outcome": "redraft", "feedback": [str(response["args"])]}
    return {"outcome": "ignored"}


def after_human(state: EmailTask) -> str:
    return {"send": "send_email", "redraft": "draft_reply"}.get(state.outcome, END)


def send_email(state: EmailTask) -> dict[str, Any]:
    # A real agent calls its mail API here; the demo only records what it would send.
    return {"outcome": "sent"}


def build() -> Any:
    builder = StateGraph(EmailTask, input_schema=IncomingEmail)
    builder.add_node("draft_reply", draft_reply)
    builder.add_node("ask_human", ask_human)
    builder.add_node("send_email", send_email, side_effects=True)
    builder.set_entry_point("draft_reply")
    builder.add_edge("draft_reply", "ask_human")
    builder.add_conditional_edges("ask_human", after_human, ["send_email", "draft_reply", END])
    builder.add_edge("send_email", END)
    return builder.compile()


graph = build()
