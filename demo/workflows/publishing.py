"""Content publishing: spelling, legal and SEO checks run in parallel and join at a review;
the reviewer approves, rejects with a comment, or asks for changes, which loops through a
revise node and the checks again before the next review.

Written the way LangGraph's documentation teaches (a `TypedDict` state with `Annotated`
reducers, `add_node(fn)`, `START`/`END` edges, `interrupt()`): with its import line changed
to `from langgraph.graph import ...` / `from langgraph.types import interrupt`, this module
runs on LangGraph unchanged (tests/runtime/test_registry.py checks it). See docs/langgraph.md.
"""

from __future__ import annotations

import operator
import re
from typing import Annotated, Any, NotRequired, TypedDict

from orchestration import END, START, StateGraph, interrupt

MISSPELLINGS = {"teh": "the", "recieve": "receive", "seperate": "separate",
                "definately": "definitely", "occured": "occurred"}
RISKY_PHRASES = {"guaranteed": "expected", "risk-free": "low-risk", "cures": "may help with"}
MIN_WORDS = 25


class Article(TypedDict):
    title: str
    body: str
    author: NotRequired[str]
    revision: NotRequired[int]
    # each check writes its own key; `|` merges the three parallel results
    checks: Annotated[dict[str, list[str]], operator.or_]
    comments: Annotated[list[str], operator.add]
    decision: NotRequired[str]
    reviewer: NotRequired[str]
    published_url: NotRequired[str]


class ArticleDraft(TypedDict):
    """What a caller gives to start (`input_schema`): the checks, decision and URL are the
    graph's own."""

    title: str
    body: str
    author: NotRequired[str]


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z'-]+", text)


def prepare(state: Article) -> dict[str, Any]:
    return {"body": re.sub(r"[ \t]+", " ", state["body"]).strip(), "decision": ""}


def spelling(state: Article) -> dict[str, Any]:
    found = sorted({w.lower() for w in _words(state["body"]) if w.lower() in MISSPELLINGS})
    return {"checks": {"spelling": [f"'{w}' should be '{MISSPELLINGS[w]}'" for w in found]}}


def legal(state: Article) -> dict[str, Any]:
    lowered = state["body"].lower()
    found = [p for p in RISKY_PHRASES if p in lowered]
    return {"checks": {"legal": [f"claim '{p}' needs legal sign-off" for p in found]}}


def seo(state: Article) -> dict[str, Any]:
    issues = []
    title, body = state["title"], state["body"]
    if not 10 <= len(title) <= 70:
        issues.append(f"title is {len(title)} characters; aim for 10-70")
    if len(_words(body)) < MIN_WORDS:
        issues.append(f"body has {len(_words(body))} words; aim for at least {MIN_WORDS}")
    return {"checks": {"seo": issues}}


def review(state: Article) -> dict[str, Any]:
    revision = state.get("revision", 0)
    answer = interrupt({
        "kind": "review",
        "title": f"Publish “{state['title']}” (revision {revision})",
        "description": (
            "Read the article and the automatic checks. Approve to publish, reject to drop it, "
            "or respond with the changes you want; the author's revision comes back to you."
        ),
        "data": {
            "title": state["title"],
            "author": state.get("author", ""),
            "revision": revision,
            "body": state["body"],
            "checks": {name: list(issues) for name, issues in sorted(state["checks"].items())},
            "comments": list(state["comments"]),
        },
        "actions": ["approve", "reject", "respond"],
        "assignee": "reviewer",
    })
    reviewer = str(answer.get("reviewer", ""))
    action = answer.get("action")
    if action == "respond":
        text = str(answer.get("text") or answer.get("comment") or "")
        return {"decision": "changes_requested", "reviewer": reviewer,
                "comments": [f"{reviewer or 'reviewer'}: {text}"]}
    comment = str(answer.get("comment", ""))
    update: dict[str, Any] = {
        "decision": "approved" if action == "approve" else "rejected", "reviewer": reviewer,
    }
    if comment:
        update["comments"] = [f"{reviewer or 'reviewer'}: {comment}"]
    return update


def after_review(state: Article) -> str:
    return {"approved": "publish", "changes_requested": "revise"}.get(state.get("decision"), END)


def revise(state: Article) -> dict[str, Any]:
    """The 'author' applies every automatic finding; deterministic, so replays agree."""
    body = state["body"]
    for wrong, right in MISSPELLINGS.items():
        body = re.sub(rf"\b{wrong}\b", right, body, flags=re.IGNORECASE)
    for risky, safer in RISKY_PHRASES.items():
        body = re.sub(re.escape(risky), safer, body, flags=re.IGNORECASE)
    if len(_words(body)) < MIN_WORDS:
        body += (" This revision adds background, a worked example and a short summary so "
                 "readers can follow the argument from start to finish.")
    return {"body": body, "revision": state.get("revision", 0) + 1}


def publish(state: Article) -> dict[str, Any]:
    slug = re.sub(r"[^a-z0-9]+", "-", state["title"].lower()).strip("-") or "untitled"
    return {"published_url": f"https://blog.example.com/{slug}"}


def build() -> Any:
    builder = StateGraph(Article, input_schema=ArticleDraft)
    for node in (prepare, spelling, legal, seo, review, revise, publish):
        builder.add_node(node)
    builder.add_edge(START, "prepare")
    for check in ("spelling", "legal", "seo"):
        builder.add_edge("prepare", check)
    builder.add_edge(["spelling", "legal", "seo"], "review")
    builder.add_conditional_edges("review", after_review, ["publish", "revise", END])
    builder.add_edge("revise", "prepare")
    # `publish` has no outgoing edge: the run ends there.
    return builder.compile()


graph = build()
