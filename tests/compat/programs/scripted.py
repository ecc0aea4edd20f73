"""A scripted stand-in for a chat model: deterministic replies, no network. Not LangGraph API,
so the suite leaves this import alone."""

from __future__ import annotations

from typing import Any


def text_of(message: Any) -> str:
    """The content of a dict message or of a LangChain message object."""
    return message["content"] if isinstance(message, dict) else message.content


def role_of(message: Any) -> str:
    if isinstance(message, dict):
        return message["role"]
    return {"human": "user", "ai": "assistant"}.get(message.type, message.type)


class ScriptedModel:
    """Replies from a script: `replies[prompt]` when given, else an echo that shows how much
    of the conversation the model was shown (so a lost history is visible)."""

    def __init__(self, replies: dict[str, str] | None = None) -> None:
        self.replies = replies or {}
        self.calls = 0

    def invoke(self, prompt: Any) -> dict[str, str]:
        self.calls += 1
        if isinstance(prompt, str):
            return {"role": "assistant", "content": self.replies.get(prompt, f"re: {prompt}")}
        last = text_of(prompt[-1])
        users = [text_of(m) for m in prompt if role_of(m) == "user"]
        reply = self.replies.get(last, f"you said {last!r}; I have seen {len(users)} of yours")
        return {"role": "assistant", "content": reply}
