"""Agent Inbox payloads: LangGraph agents that pause with `HumanInterrupt`s, answered with
`HumanResponse`s, so an agent written for LangChain's Agent Inbox runs here unchanged.

The shapes (github.com/langchain-ai/agent-inbox, README "Interrupt Schema"):

    HumanInterrupt = {"action_request": {"action": str, "args": dict},
                      "config": {"allow_ignore": bool, "allow_respond": bool,
                                 "allow_edit": bool, "allow_accept": bool},
                      "description": str | None}          # Markdown
    HumanResponse  = {"type": "accept" | "ignore" | "response" | "edit",
                      "args": None | str | ActionRequest}

An interrupt value is one `HumanInterrupt` or a list of them. The answer is always a list of
`HumanResponse`s, one per request, as Agent Inbox sends it (`interrupt(request)[0]` in the
agent): accept sends the action request back as it was, edit with the edited args, response
the reviewer's text, ignore `None`.

A review stores the requests in its payload (`"format": "agent_inbox"`); the decision row
records the responses sent (`values["agent_inbox_response"]`) and one of the usual actions
(accept -> approve, edit -> edit, response -> respond, ignore -> ignore) for the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from approvals.diff import to_jsonable

FORMAT = "agent_inbox"
RESPONSE_KEY = "agent_inbox_response"
TYPES = ("accept", "edit", "response", "ignore")
CONFIG_KEYS = {"accept": "allow_accept", "edit": "allow_edit", "response": "allow_respond",
               "ignore": "allow_ignore"}
ACTION_OF_TYPE = {"accept": "approve", "edit": "edit", "response": "respond", "ignore": "ignore"}
LABELS = {"accept": "Accept", "edit": "Save edits and accept", "response": "Respond",
          "ignore": "Ignore"}


@dataclass(frozen=True, slots=True)
class AgentRequest:
    action: str
    args: dict[str, Any]
    allowed: tuple[str, ...]  # response types the config allows, in TYPES order
    description: str

    def response(self, kind: str, args: Mapping[str, Any] | None = None,
                 text: str = "") -> dict[str, Any]:
        """The `HumanResponse` of `kind` to this request."""
        if kind == "accept":
            return {"type": "accept", "args": {"action": self.action, "args": dict(self.args)}}
        if kind == "edit":
            return {"type": "edit", "args": {"action": self.action, "args": dict(args or {})}}
        if kind == "response":
            return {"type": "response", "args": text}
        return {"type": "ignore", "args": None}


def _one(value: Any) -> AgentRequest | None:
    if not isinstance(value, Mapping):
        return None
    request, config = value.get("action_request"), value.get("config")
    if not isinstance(request, Mapping) or not isinstance(config, Mapping):
        return None
    action, args = request.get("action"), request.get("args")
    if not isinstance(action, str) or not isinstance(args, Mapping):
        return None
    if not all(isinstance(config.get(k), bool) for k in CONFIG_KEYS.values()):
        return None
    description = value.get("description")
    return AgentRequest(
        action=action,
        args=dict(args),
        allowed=tuple(t for t in TYPES if config[CONFIG_KEYS[t]]),
        description=description if isinstance(description, str) else "",
    )


def parse(value: Any) -> list[AgentRequest] | None:
    """The requests in an interrupt value, or None if it is not in Agent Inbox's shape."""
    items = value if isinstance(value, list) else [value]
    if not items:
        return None
    parsed = [_one(v) for v in items]
    if any(p is None for p in parsed) or any(not p.allowed for p in parsed if p):
        return None
    return [p for p in parsed if p is not None]


def review_payload(value: Any, node: str) -> dict[str, Any] | None:
    """The review payload for an Agent Inbox interrupt (None if `value` is not one)."""
    requests = parse(value)
    if requests is None:
        return None
    # every type some request allows (each answer is checked against its own request)
    actions = [t for t in TYPES if any(t in r.allowed for r in requests)]
    names = ", ".join(dict.fromkeys(r.action for r in requests))
    return {
        "kind": "review",
        "format": FORMAT,
        "title": f"{node or 'The agent'} asks to run {names}"[:300],
        "description": requests[0].description if len(requests) == 1 else "",
        "requests": to_jsonable(value if isinstance(value, list) else [value]),
        "data": to_jsonable(requests[0].args if len(requests) == 1
                            else [{"action": r.action, "args": r.args} for r in requests]),
        "actions": [ACTION_OF_TYPE[t] for t in actions],
    }


def is_agent_review(payload: Mapping[str, Any]) -> bool:
    return isinstance(payload, Mapping) and payload.get("format") == FORMAT


def requests_of(payload: Mapping[str, Any]) -> list[AgentRequest]:
    return parse(payload.get("requests")) or []


class AnswerError(ValueError):
    """An answer that does not fit the requests; the message says which and why (`field`:
    the argument it is about, where it is one)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# The JSON type an argument keeps through an edit, from the value the agent asked with (its
# request carries no schema): a string stays a string, a list a list. An integer takes only
# an integer, a fractional number any number; null (the agent gave none) takes any value.
def _json_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return None


_ARTICLES = {"integer": "an integer", "number": "a number", "string": "a string",
             "boolean": "a boolean (true or false)", "object": "an object", "array": "an array"}


def _type_error(asked: Any, given: Any) -> str | None:
    """Why `given` cannot replace the argument the agent asked with as `asked`; None if it
    can."""
    expected = _json_type(asked)
    if expected is None:
        return None
    got = _json_type(given)
    if got == expected or (expected == "number" and got == "integer"):
        return None
    given_as = _ARTICLES.get(got, "null") if got else "null"
    return f"must be {_ARTICLES[expected]}, as the agent asked with; got {given_as}."


def answer(payload: Mapping[str, Any], choices: Sequence[tuple[str, Mapping[str, Any] | None,
                                                                str]]) -> list[dict[str, Any]]:
    """The list of responses for (type, edited args, text) per request, each checked against
    that request's config."""
    requests = requests_of(payload)
    if len(choices) != len(requests):
        raise AnswerError(f"{len(requests)} request(s) need {len(requests)} answer(s); "
                          f"got {len(choices)}.")
    out = []
    for i, (request, (kind, args, text)) in enumerate(zip(requests, choices, strict=True)):
        where = f"request {i + 1} ({request.action})"
        if kind not in request.allowed:
            raise AnswerError(f"{where} does not allow '{kind}' "
                              f"(it allows {', '.join(request.allowed)}).")
        if kind == "response" and not text.strip():
            raise AnswerError(f"{where}: write the response to send.")
        out.append(request.response(kind, args, text.strip()))
    return out


TYPE_OF_ACTION = {action: kind for kind, action in ACTION_OF_TYPE.items()}


def answer_for_action(payload: Mapping[str, Any], action: str,
                      values: Mapping[str, Any] | None = None, text: str = ""
                      ) -> list[dict[str, Any]]:
    """A decision made without the Agent Inbox form (bulk approve, the HTTP API): approve
    accepts every request and ignore ignores them. On a review of one request (the usual
    `HumanInterrupt`), edit sends its args with `values` changed, and respond sends `text`:
    every action the review offers is then open to the API, as on the page. With several
    requests, edit and respond need the review's page (it answers each on its own)."""
    kind = TYPE_OF_ACTION.get(action)
    requests = requests_of(payload)
    if kind is None or (kind in ("edit", "response") and len(requests) != 1):
        raise AnswerError(f"'{action}' on an Agent Inbox review of {len(requests)} requests "
                          "needs the review's page (it answers each request on its own).")
    if kind != "edit":
        return answer(payload, [(kind, None, text)] * len(requests))
    (request,) = requests
    if not values:
        raise AnswerError(f"an edit of {request.action} needs values: the arguments to change "
                          f"({', '.join(request.args) or 'it has none'}).")
    unknown = sorted(set(values) - set(request.args))
    if unknown:
        raise AnswerError(f"{', '.join(map(repr, unknown))} is not an argument of "
                          f"{request.action} (its arguments: {', '.join(request.args)}).",
                          unknown[0])
    for name, value in values.items():
        wrong = _type_error(request.args[name], value)
        if wrong:
            raise AnswerError(f"{name!r} of {request.action} {wrong}", name)
    return answer(payload, [("edit", {**request.args, **values}, "")])


def summary(responses: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(decision action, response text) recorded for `responses`: the first response's type
    names the action; the texts of all responses are joined."""
    first = str(responses[0].get("type")) if responses else "ignore"
    texts = [str(r.get("args")) for r in responses if r.get("type") == "response"]
    return ACTION_OF_TYPE.get(first, "ignore"), "\n\n".join(texts)
