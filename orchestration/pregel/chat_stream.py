"""`stream_mode="messages"`: chat messages as they are made, each with where it came from.

Two sources, as in LangGraph: the tokens a LangChain chat model streams while a node calls it
(and its whole message when it did not stream), and the LangChain message objects a node
returns. A node's call to a chat model finds our callback through LangChain's own context
variable for the current runnable config, which this module sets around the node; so nodes keep
calling `model.invoke(messages)` with no config, as LangGraph code does. A message is sent
once: the tokens' final message, and a message the node was given or returned before, are
recognised by id.

Only LangChain's message objects count: without `langchain_core` installed there is no chat
model to hear from, and the mode yields nothing (dict messages are state, not model output).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from orchestration.config import task_keys
from orchestration.context import current_run
from orchestration.types import TAG_NOSTREAM

if TYPE_CHECKING:
    from orchestration.context import RunContext
    from orchestration.interrupts import TaskScope

NOSTREAM = TAG_NOSTREAM  # a chat model call tagged so is not streamed


class Seen:
    """The message ids one stream has sent (or a node was given): each message goes once."""

    def __init__(self) -> None:
        self._ids: set[Any] = set()
        self._lock = threading.Lock()

    def first(self, message: Any) -> bool:
        """Mark `message` sent; whether it was not yet (a message without id gets one)."""
        if getattr(message, "id", None) is None:
            message.id = str(uuid4())
        with self._lock:
            if message.id in self._ids:
                return False
            self._ids.add(message.id)
            return True

    def add(self, message: Any) -> None:
        if getattr(message, "id", None) is not None:
            with self._lock:
                self._ids.add(message.id)


def wanted(context: RunContext | None) -> bool:
    sink = context.sink if context is not None else None
    return sink is not None and "messages" in sink.modes and (
        sink.subgraphs or not context.checkpoint_ns  # type: ignore[union-attr]
    ) and _langchain() is not None


@contextmanager
def node_messages(context: RunContext, scope: TaskScope, arg: Any) -> Iterator[_Tap]:
    """Around one run of a node: its chat model calls stream to the sink, and `tap.output`
    sends the messages the node returned."""
    lc = _langchain()
    assert lc is not None and context.sink is not None
    meta = _metadata(context, scope)
    seen: Seen = context.sink.seen
    for message in _messages_in(arg, lc):
        seen.add(message)  # given to the node: not its output
    tap = _Tap(context, meta, seen, lc)
    # a chat model's metadata also names the task's namespace, as LangGraph's does
    model_meta = {**meta, "checkpoint_ns": meta["langgraph_checkpoint_ns"]}
    token = lc.var_child_runnable_config.set(
        {"callbacks": [tap.handler], "metadata": model_meta, "tags": []}
    )
    try:
        yield tap
    finally:
        lc.var_child_runnable_config.reset(token)


class _Tap:
    def __init__(self, context: RunContext, meta: dict[str, Any], seen: Seen, lc: Any) -> None:
        self.sink, self.ns = context.sink, context.checkpoint_ns
        self.meta, self.seen, self.lc = meta, seen, lc
        self.handler = lc.handler_class(self)

    def in_subgraph(self) -> bool:
        """Whether a subgraph this node runs is the one calling the model now (the handler
        runs in the caller's thread). Without `subgraphs=True` its tokens are not streamed:
        the node's output streams its messages once, under this node, as in LangGraph."""
        run = current_run.get()
        return run is not None and run.checkpoint_ns != self.ns

    def send(self, message: Any, meta: Mapping[str, Any], *, once: bool) -> None:
        if self.seen.first(message) or not once:
            self.sink.emit(self.ns, "messages", (message, dict(meta)))  # type: ignore[union-attr]

    def output(self, result: Any) -> None:
        """The messages in what the node returned (an update, a `Command`'s, a list of them)."""
        from orchestration.types import Command

        for part in result if isinstance(result, list) else [result]:
            update = part.update if isinstance(part, Command) else part
            for message in _messages_in(update, self.lc):
                self.send(message, self.meta, once=True)


def _messages_in(value: Any, lc: Any) -> Iterator[Any]:
    """LangChain messages in a node's input or output: the value itself, a list of them, or
    the top-level fields of a dict, dataclass or model (and lists in those fields)."""
    base = lc.BaseMessage
    if isinstance(value, base):
        yield value
        return
    if isinstance(value, Mapping):
        fields: Sequence[Any] = list(value.values())
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        fields = value
    else:
        fields = list(getattr(value, "__dict__", {}).values())
    for field in fields:
        if isinstance(field, base):
            yield field
        elif isinstance(field, Sequence) and not isinstance(field, str | bytes):
            yield from (item for item in field if isinstance(item, base))


def _metadata(context: RunContext, scope: TaskScope) -> dict[str, Any]:
    configurable = context.config.get("configurable", {}) if context.config else {}
    meta = {k: v for k, v in configurable.items()
            if isinstance(k, str) and not k.startswith("__") and k != "checkpoint_ns"}
    meta.update(task_keys(scope))
    return meta


_lc_lock = threading.Lock()
_lc: Any = None


def _langchain() -> Any:
    """LangChain's pieces this mode uses, imported once; None without `langchain_core`."""
    global _lc
    if _lc is None:
        with _lc_lock:
            if _lc is None:
                _lc = _load() or False
    return _lc or None


def _load() -> Any:
    try:
        from langchain_core.callbacks import BaseCallbackHandler
        from langchain_core.messages import BaseMessage
        from langchain_core.outputs import ChatGeneration, ChatGenerationChunk
        from langchain_core.runnables.config import var_child_runnable_config
    except ImportError:
        return None
    try:  # a handler of this kind makes a chat model stream its tokens inside `invoke`
        from langchain_core.tracers._streaming import _StreamingCallbackHandler as Streaming
    except ImportError:
        Streaming = object  # noqa: N806

    class ChatModelTap(BaseCallbackHandler, Streaming):  # type: ignore[misc, valid-type]
        """Hears a node's chat model calls (LangChain callbacks) for its `_Tap`."""

        run_inline = True  # in the node's own thread, in order

        def __init__(self, tap: _Tap) -> None:
            self.tap = tap
            self.calls: dict[Any, dict[str, Any]] = {}

        def tap_output_iter(self, run_id: Any, output: Any) -> Any:
            return output

        def tap_output_aiter(self, run_id: Any, output: Any) -> Any:
            return output

        def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: Any,
                                tags: list[str] | None = None,
                                metadata: dict[str, Any] | None = None, **_: Any) -> None:
            if NOSTREAM not in (tags or ()) and not self.tap.in_subgraph():
                self.calls[run_id] = {**self.tap.meta, **(metadata or {})}

        def on_llm_new_token(self, token: str, *, chunk: Any = None, run_id: Any,
                             **_: Any) -> None:
            meta = self.calls.get(run_id)
            if meta is not None and isinstance(chunk, ChatGenerationChunk):
                self.tap.send(chunk.message, meta, once=False)

        def on_llm_end(self, response: Any, *, run_id: Any, **_: Any) -> None:
            meta = self.calls.pop(run_id, None)
            generations = getattr(response, "generations", None)
            if meta is not None and generations and generations[0]:
                generation = generations[0][0]
                if isinstance(generation, ChatGeneration):
                    self.tap.send(generation.message, meta, once=True)

        def on_llm_error(self, error: BaseException, *, run_id: Any, **_: Any) -> None:
            self.calls.pop(run_id, None)

    class LangChain:
        pass

    lc = LangChain()
    lc.BaseMessage = BaseMessage  # type: ignore[attr-defined]
    lc.var_child_runnable_config = var_child_runnable_config  # type: ignore[attr-defined]
    lc.handler_class = ChatModelTap  # type: ignore[attr-defined]
    return lc
