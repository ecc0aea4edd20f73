"""`add_messages`, LangGraph's reducer for a chat history, without LangChain.

Messages are dicts (`{"role": "user", "content": "hi", "id": "..."}`) or objects that look
like LangChain messages (`.id`, `.type`, `.content`). A dict is kept as a `Message`: still
that dict, and also readable as LangChain's message objects are (`m.content`, `m.type`),
because LangGraph code reads them so (LangGraph turns dicts into LangChain objects). Objects
are kept as given. Exported by `orchestration.reducers`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from orchestration.checkpoint import serde

# `RemoveMessage(REMOVE_ALL_MESSAGES)` clears the history before the messages that follow it.
REMOVE_ALL_MESSAGES = "__remove_all__"


@dataclass(frozen=True, slots=True)
class RemoveMessage:
    """An update item that removes the message with this `id` from the history."""

    id: str
    type: str = "remove"
    content: str = ""


# LangChain's message `type` for a dict's `role`.
_TYPES = {"user": "human", "human": "human", "assistant": "ai", "ai": "ai", "system": "system",
          "tool": "tool", "function": "function"}
# What a LangChain message has when a dict does not say: read as these (made afresh each
# read, so a caller's change to an empty list or dict never reaches another message).
_ABSENT: dict[str, Callable[[], Any]] = {
    "name": lambda: None, "tool_calls": list, "invalid_tool_calls": list,
    "tool_call_id": lambda: None, "additional_kwargs": dict, "response_metadata": dict,
    "usage_metadata": lambda: None,
}


class Message(dict[str, Any]):
    """A chat message: the dict it was given (`{"role", "content", "id", ...}`, equal to it,
    stored and shown as it), also read as LangChain's message objects are, so LangGraph code
    runs: `m.content`, `m.id`, `m.type` ("human", "ai", "system", "tool", from `role`),
    `m.tool_calls` (empty when absent), `m.name`, ... and `m.pretty_print()`. Setting
    `m.content = ...` sets the key."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name == "type":
            role = self.get("role", self.get("type"))
            return _TYPES.get(role, role) if isinstance(role, str) else role
        try:
            return self[name]
        except KeyError:
            if name in _ABSENT:
                return _ABSENT[name]()
            raise AttributeError(
                f"message has no {name!r} (its keys: {sorted(self)})"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def text(self) -> str:
        content = self.get("content", "")
        return content if isinstance(content, str) else str(content)

    def pretty_repr(self) -> str:
        """LangChain's `pretty_repr`: a title line, the name if any, then the content."""
        title = f" {str(self.type).title()} Message "
        side = "=" * ((80 - len(title)) // 2)
        lines = [f"{side}{title}{side}{'=' if len(title) % 2 else ''}"]
        if self.get("name") is not None:
            lines.append(f"Name: {self['name']}")
        return "\n".join(lines) + f"\n\n{self.get('content', '')}"

    def pretty_print(self) -> None:
        print(self.pretty_repr())  # noqa: T201 - LangChain's method prints


serde.register_message_class(Message)


def _is_remove(message: Any) -> bool:
    """Ours, or LangChain's RemoveMessage (an object whose `type` is "remove")."""
    return isinstance(message, RemoveMessage) or (
        not isinstance(message, Mapping) and getattr(message, "type", None) == "remove"
    )


def _id_of(message: Any) -> Any:
    if isinstance(message, Mapping):
        return message.get("id")
    return getattr(message, "id", None)


def _with_id(message: Any) -> Any:
    """The message, given an id if it has none (a copy for a dict; set on an object)."""
    if _id_of(message) is not None:
        if isinstance(message, Mapping) and type(message) is not Message:
            return Message(message)
        return message
    new_id = str(uuid.uuid4())
    if isinstance(message, Mapping):
        return Message({**message, "id": new_id})
    try:
        message.id = new_id
    except AttributeError as error:
        raise TypeError(
            f"add_messages cannot give an id to {type(message).__name__} {message!r:.80}: "
            "give it an `id`, or use a dict message {'role': ..., 'content': ..., 'id': ...}"
        ) from error
    return message


def _role_and_content(value: Any) -> dict[str, Any] | None:
    """LangChain's `("user", "hi")` form as a dict message, or None if `value` is not one."""
    if (type(value) is tuple and len(value) == 2 and isinstance(value[0], str)
            and value[0] in _ROLES and isinstance(value[1], str | list)):
        return {"role": value[0], "content": value[1]}
    return None


# the roles LangChain's ("role", content) tuples may name
_ROLES = frozenset({*_TYPES, "developer"})


def _one(value: Any) -> Any:
    if isinstance(value, str):
        return {"role": "user", "content": value}
    return _role_and_content(value) or value


def _as_messages(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping) or not isinstance(value, Sequence) or isinstance(value, str):
        return [_one(value)]
    pair = _role_and_content(value)
    return [pair] if pair is not None else [_one(v) for v in value]


def add_messages(left: Any, right: Any) -> list[Any]:
    """Merge `right` into `left`: a message whose id is already there replaces it,
    `RemoveMessage(id)` removes it, `RemoveMessage(REMOVE_ALL_MESSAGES)` clears what came
    before, anything else is appended. Messages without an id get one."""
    merged = [_with_id(m) for m in _as_messages(left)]
    incoming = [m if _is_remove(m) else _with_id(m) for m in _as_messages(right)]
    for index in range(len(incoming) - 1, -1, -1):
        item = incoming[index]
        if _is_remove(item) and _id_of(item) == REMOVE_ALL_MESSAGES:
            return [m for m in incoming[index + 1 :] if not _is_remove(m)]
    position = {_id_of(m): i for i, m in enumerate(merged)}
    removed: set[Any] = set()
    for message in incoming:
        key = _id_of(message)
        if _is_remove(message):
            if key not in position:
                raise ValueError(
                    f"RemoveMessage({key!r}) names no message of the history; "
                    f"known ids: {[_id_of(m) for m in merged][:20]}"
                )
            removed.add(key)
        elif key in position:
            merged[position[key]] = message
            removed.discard(key)
        else:
            position[key] = len(merged)
            merged.append(message)
    return [m for m in merged if _id_of(m) not in removed]


class MessagesState(TypedDict):
    """LangGraph's prebuilt state for chat graphs: one `messages` list merged by
    `add_messages`. Subclass it to add fields."""

    messages: Annotated[list[Any], add_messages]


# A RemoveMessage travels in updates, which are stored as pending writes.
serde.register(RemoveMessage)

__all__ = ["REMOVE_ALL_MESSAGES", "Message", "MessagesState", "RemoveMessage", "add_messages"]
