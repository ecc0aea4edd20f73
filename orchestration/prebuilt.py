"""`ToolNode` and `tools_condition`: LangGraph's prebuilt pieces of a tool-calling agent, so
the usual agent loop (a model node, a tools node, a router between them) runs with only its
imports changed (`langgraph.prebuilt` -> `orchestration.prebuilt`).

Tools are plain functions (named after `__name__`, their arguments checked against their
signature by pydantic, as LangChain's `@tool` does) or LangChain tools, or anything with a
`name` and an `invoke(args)`. LangChain itself is not needed: the messages this node writes
are dict messages (`{"role": "tool", "content", "name", "tool_call_id", "status"}`), which
read as LangChain's `ToolMessage` does (`orchestration.messages.Message`).

What LangGraph's `ToolNode` does and this one does too: it runs the tool calls of the last
AI message (several side by side), answers an unknown tool name and bad arguments with an
error message the model can act on, raises other tool errors unless `handle_tool_errors`
says otherwise, passes a tool's `interrupt()` through (the node pauses), injects the state,
the store and the tool call's id into the parameters that ask for them, and takes a tool's
`Command`. Not provided: `wrap_tool_call=`, `ToolRuntime`, `create_react_agent`.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Literal

from orchestration.context import current_run
from orchestration.errors import ParentCommand
from orchestration.interrupts import GraphInterrupt
from orchestration.messages import Message
from orchestration.types import END, Command, Send, adopt_tool_output

__all__ = ["InjectedState", "InjectedStore", "ToolNode", "tools_condition"]

INVALID_TOOL_NAME = "Error: {requested_tool} is not a valid tool, try one of [{available_tools}]."
TOOL_CALL_ERROR = "Error: {error}\n Please fix your mistakes."
TOOL_INVOCATION_ERROR = (
    "Error invoking tool '{tool_name}' with kwargs {tool_kwargs} with error:\n"
    " {error}\n"
    " Please fix the error and try again."
)
# Content blocks a tool may return as they are (LangChain's ToolMessage block types).
_BLOCK_TYPES = {"text", "image", "image_url", "json", "search_result", "custom_tool_call_output",
                "document", "file"}
# Exceptions that are the run's control flow, never a tool's error to report to the model.
_SIGNALS = (GraphInterrupt, ParentCommand)


class InjectedState:
    """Marks a tool parameter the node fills with the graph's state (`Annotated[dict,
    InjectedState]`) or one field of it (`Annotated[list, InjectedState("messages")]`);
    the model never sees or gives it."""

    def __init__(self, field: str | None = None) -> None:
        self.field = field


class InjectedStore:
    """Marks a tool parameter the node fills with the graph's store (`Annotated[BaseStore,
    InjectedStore()]`)."""


class ToolInvocationError(Exception):
    """A tool called with arguments its signature refuses (the model's mistake): reported
    to the model as a tool message by the default `handle_tool_errors`."""

    def __init__(self, tool_name: str, tool_kwargs: Mapping[str, Any], error: str) -> None:
        self.message = TOOL_INVOCATION_ERROR.format(
            tool_name=tool_name, tool_kwargs=dict(tool_kwargs), error=error
        )
        super().__init__(self.message)


def _default_handle_tool_errors(error: Exception) -> str:
    """LangGraph 1.x's default: bad arguments are told to the model, anything else raised."""
    if isinstance(error, ToolInvocationError):
        return error.message
    raise error


def msg_content_output(output: Any) -> str | list[dict[str, Any]]:
    """A tool's return value as a tool message's content: a string or content blocks as they
    are, anything else as JSON (`str()` when it is not JSON)."""
    if isinstance(output, str) or (
        isinstance(output, list)
        and all(isinstance(x, dict) and x.get("type") in _BLOCK_TYPES for x in output)
    ):
        return output
    try:
        return json.dumps(output, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(output)


def _tool_message(content: Any, name: str, call_id: str, status: str = "success") -> Message:
    return Message({"role": "tool", "content": content, "name": name, "tool_call_id": call_id,
                    "status": status})


def _is_ai(message: Any) -> bool:
    return getattr(message, "type", None) == "ai" or (
        isinstance(message, Mapping) and message.get("role") in ("assistant", "ai")
    )


def _messages_of(state: Any, key: str) -> list[Any]:
    if isinstance(state, Mapping):
        return list(state.get(key) or [])
    return list(getattr(state, key, None) or [])


class _Tool:
    """One tool as the node calls it: its name, how to call it with the model's arguments,
    and which of its parameters the node fills in (state, store, tool call id)."""

    def __init__(self, tool: Any) -> None:
        self.tool = tool
        self.langchain = hasattr(tool, "invoke")  # a LangChain tool: it checks its own args
        if self.langchain:
            adopt_tool_output()  # so the tool hands back a Command it returns as it is
            name = getattr(tool, "name", None)
            fn = getattr(tool, "func", None) or getattr(tool, "coroutine", None)
        elif callable(tool):
            name, fn = getattr(tool, "__name__", None), tool
        else:
            name, fn = None, None
        if not isinstance(name, str) or not name or name == "<lambda>":
            raise TypeError(
                f"ToolNode cannot use {tool!r} as a tool: give a named function (def, not "
                "lambda) or a LangChain tool"
            )
        self.name = name
        self.fn = fn
        self.injected: dict[str, Any] = _injected_params(fn) if fn is not None else {}
        self._checked: Callable[..., Any] | None = None

    def call(self, call: Mapping[str, Any], args: Mapping[str, Any]) -> Any:
        """The tool's result for `call` with `args` (the model's and the injected ones)."""
        if self.langchain:  # as LangGraph calls it: with the tool call, so it may answer
            return self.tool.invoke({**call, "args": dict(args), "type": "tool_call"})
        result = self._validated()(**args)
        return _run_coroutine(result) if inspect.isawaitable(result) else result

    def _validated(self) -> Callable[..., Any]:
        """The function behind pydantic's argument check: "3" for an int becomes 3 and a
        missing or wrong argument is a `ValidationError`, as with LangChain's `@tool`."""
        if self._checked is None:
            import pydantic

            try:
                self._checked = pydantic.validate_call(
                    self.fn, config={"arbitrary_types_allowed": True}  # type: ignore[arg-type]
                )
            except (TypeError, pydantic.PydanticUserError):  # a signature pydantic cannot read
                self._checked = self.fn
        return self._checked  # type: ignore[return-value]


def _run_coroutine(awaitable: Any) -> Any:
    """An async tool's result, from this sync node: on a thread of its own when this thread
    already runs an event loop (the graph was called with `ainvoke`)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(awaitable))
    with ThreadPoolExecutor(1) as pool:  # in this task's context: interrupt(), get_config()
        context = contextvars.copy_context()
        return pool.submit(context.run, asyncio.run, _awaited(awaitable)).result()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _injected_params(fn: Callable[..., Any]) -> dict[str, Any]:
    """{parameter: its marker} for the parameters annotated `InjectedState(...)`,
    `InjectedStore()` or LangChain's `InjectedToolCallId`."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable annotations: nothing is injected
        return {}
    found: dict[str, Any] = {}
    for param, hint in hints.items():
        if param == "return" or typing.get_origin(hint) is not typing.Annotated:
            continue
        for marker in hint.__metadata__:
            kind = marker if isinstance(marker, type) else type(marker)
            if kind.__name__ in ("InjectedState", "InjectedStore", "InjectedToolCallId"):
                found[param] = marker
                break
    return found


def _injection(marker: Any, state: Any, call_id: str) -> Any:
    kind = marker if isinstance(marker, type) else type(marker)
    if kind.__name__ == "InjectedToolCallId":
        return call_id
    if kind.__name__ == "InjectedStore":
        run = current_run.get()
        return run.store if run is not None else None
    field = getattr(marker, "field", None) if not isinstance(marker, type) else None
    if field is None:
        return state
    return state[field] if isinstance(state, Mapping) else getattr(state, field)


class ToolNode:
    """A node that runs the tool calls of the last AI message in the state's `messages`
    (`messages_key`) and writes one tool message per call, in the calls' order. Given a
    list of messages it returns a list; given tool calls (`[{"name", "args", "id",
    "type": "tool_call"}]`, e.g. from a `Send`) it runs those.

    `handle_tool_errors` as LangGraph's: by default bad arguments come back to the model as
    an error message and other exceptions are raised; `True` reports every exception, a
    string replaces the report, an exception type (or tuple) reports only those, a function
    taking the exception returns the report, `False` raises everything."""

    def __init__(
        self,
        tools: Sequence[Any],
        *,
        name: str = "tools",
        tags: list[str] | None = None,
        handle_tool_errors: bool | str | Callable[..., str] | type[Exception]
        | tuple[type[Exception], ...] = _default_handle_tool_errors,
        messages_key: str = "messages",
    ) -> None:
        self.name = name
        self.tags = list(tags or [])
        self.messages_key = messages_key
        self._handle = handle_tool_errors
        self._tools = {tool.name: tool for tool in (_Tool(t) for t in tools)}

    def invoke(self, input: Any, config: Mapping[str, Any] | None = None) -> Any:  # noqa: A002
        """The node called outside a graph, as LangGraph's Runnable `invoke`."""
        return self(input, config or {})

    @property
    def tools_by_name(self) -> dict[str, Any]:
        return {name: tool.tool for name, tool in self._tools.items()}

    def __call__(self, input: Any, config: Mapping[str, Any]) -> Any:  # noqa: A002 - LangGraph's name
        calls, kind = self._parse_input(input)
        if len(calls) <= 1:
            outputs = [self._run_one(call, input) for call in calls]
        else:  # side by side, each in a copy of this task's context (interrupt, get_config)
            workers = config.get("max_concurrency") or None
            with ThreadPoolExecutor(workers, thread_name_prefix=f"{self.name}-") as pool:
                futures = [
                    pool.submit(contextvars.copy_context().run, self._run_one, call, input)
                    for call in calls
                ]
                outputs = [future.result() for future in futures]
        return self._combine(outputs, kind)

    def _parse_input(self, input: Any) -> tuple[list[dict[str, Any]], str]:  # noqa: A002
        if isinstance(input, list):
            if input and isinstance(input[-1], Mapping) and input[-1].get("type") == "tool_call":
                return [dict(c) for c in input], "tool_calls"
            messages, kind = input, "list"
        elif isinstance(input, Mapping) and input.get("__type") == "tool_call_with_context":
            return [dict(input["tool_call"])], "tool_calls"
        else:
            messages, kind = _messages_of(input, self.messages_key), "dict"
            if not messages:
                raise ValueError(
                    f"No message found in input: ToolNode reads the state's "
                    f"{self.messages_key!r} (messages_key=...), a list of messages, or tool calls"
                )
        for message in reversed(messages):
            if _is_ai(message):
                return [dict(c) for c in getattr(message, "tool_calls", None) or []], kind
        raise ValueError("No AIMessage found in input: the last AI message's tool_calls are run")

    def _run_one(self, call: Mapping[str, Any], state: Any) -> Any:
        name, call_id = call.get("name"), call.get("id")
        tool = self._tools.get(name)  # type: ignore[arg-type]
        if tool is None:
            content = INVALID_TOOL_NAME.format(
                requested_tool=name, available_tools=", ".join(self._tools)
            )
            return _tool_message(content, str(name), str(call_id), "error")
        args = dict(call.get("args") or {})
        injected = {p: _injection(m, state, str(call_id)) for p, m in tool.injected.items()}
        try:
            try:
                result = tool.call(call, {**args, **injected})
            except Exception as error:
                if not _is_argument_error(error):
                    raise
                raise ToolInvocationError(name, args, _argument_errors(error)) from error
            return self._normalize(result, tool.name, str(call_id))
        except _SIGNALS:
            raise  # a tool's interrupt() pauses the node; a parent command leaves it
        except Exception as error:
            if not self._handles(error):
                raise
            return _tool_message(self._report(error), tool.name, str(call_id), "error")

    def _handles(self, error: Exception) -> bool:
        handle = self._handle
        if handle is False or handle is None:
            return False
        if isinstance(handle, type) and issubclass(handle, Exception):
            return isinstance(error, handle)
        if isinstance(handle, tuple):
            return isinstance(error, handle)
        if callable(handle) and not isinstance(handle, bool):
            return isinstance(error, _handled_types(handle))
        return True

    def _report(self, error: Exception) -> str:
        handle = self._handle
        if isinstance(handle, str):
            return handle
        if callable(handle) and not isinstance(handle, type | bool):
            return str(handle(error))
        return TOOL_CALL_ERROR.format(error=repr(error))

    def _normalize(self, result: Any, name: str, call_id: str) -> Any:
        if isinstance(result, Command):
            return _named_tool_messages(result, name, call_id, self.messages_key)
        if type(result).__name__ == "ToolMessage":  # a LangChain tool's own message
            return _tool_message(
                msg_content_output(result.content), getattr(result, "name", None) or name,
                getattr(result, "tool_call_id", None) or call_id,
                getattr(result, "status", "success"),
            )
        return _tool_message(msg_content_output(result), name, call_id)

    def _combine(self, outputs: list[Any], kind: str) -> Any:
        """Tool messages as the input came (a dict's `messages_key`, or a list); with a
        tool's `Command`, one Command carrying every message, update and goto (LangGraph
        returns a list of them, which a Stepwise node cannot)."""
        commands = [o for o in outputs if isinstance(o, Command)]
        messages = [o for o in outputs if not isinstance(o, Command)]
        if not commands:
            return messages if kind == "list" else {self.messages_key: messages}
        parents = [c for c in commands if c.graph is Command.PARENT]
        if parents:
            if len(parents) != len(commands) or messages:
                raise ValueError(
                    "a tool returned Command(graph=Command.PARENT) beside other tool results: "
                    "Stepwise's ToolNode hands the parent one command; call that tool alone"
                )
            return _merged(parents, [], self.messages_key, Command.PARENT)
        return _merged(commands, messages, self.messages_key, None)


def _named_tool_messages(
    command: Command[Any], name: str, call_id: str, key: str
) -> Command[Any]:
    """`command` with the tool's name on the tool message answering `call_id` in its update
    (as LangGraph's ToolNode names it), the tool's own message left unchanged."""
    update = command.update
    if isinstance(update, Mapping) and isinstance(update.get(key), list):
        return replace(command, update={**update, key: _named(update[key], name, call_id)})
    if isinstance(update, list):
        return replace(command, update=_named(update, name, call_id))
    return command


def _named(messages: list[Any], name: str, call_id: str) -> list[Any]:
    named = []
    for message in messages:
        if isinstance(message, Mapping):
            is_answer = message.get("role") == "tool" and message.get("tool_call_id") == call_id
            named.append({**message, "name": name} if is_answer else message)
        elif getattr(message, "type", None) == "tool" and hasattr(message, "model_copy") and (
            message.tool_call_id == call_id
        ):
            named.append(message.model_copy(update={"name": name}))
        else:
            named.append(message)
    return named


def _merged(
    commands: list[Command[Any]], messages: list[Any], key: str, graph: Any
) -> Command[Any]:
    update: dict[str, Any] = {key: list(messages)} if messages else {}
    goto: list[str | Send] = []
    resume = None
    for command in commands:
        for field, value in dict(command.update or {}).items():
            if field not in update:
                update[field] = value
            elif isinstance(update[field], list) and isinstance(value, list):
                update[field] = [*update[field], *value]
            else:
                raise ValueError(
                    f"two tool results update {field!r}: Stepwise's ToolNode merges lists "
                    "only; have one tool write that field"
                )
        target = command.goto
        goto += [target] if isinstance(target, str | Send) else list(target or ())
        resume = command.resume if command.resume is not None else resume
    return Command(update=update or None, goto=goto, resume=resume, graph=graph)


def _is_argument_error(error: Exception) -> bool:
    """pydantic's refusal of the arguments (the model's mistake, not the tool's)."""
    return type(error).__name__ == "ValidationError" and type(error).__module__.startswith(
        "pydantic"
    )


def _argument_errors(error: Exception) -> str:
    try:
        details = error.errors()  # type: ignore[attr-defined]
    except AttributeError:
        return str(error)
    return "\n".join(
        f"{'.'.join(str(part) for part in d.get('loc', ()))}: {d.get('msg', 'invalid')}"
        for d in details
    )


def _handled_types(handler: Callable[..., str]) -> tuple[type[Exception], ...]:
    """The exception types a handler's first parameter is annotated with (all if none)."""
    try:
        params = list(inspect.signature(handler).parameters.values())
        hints = typing.get_type_hints(handler)
    except (TypeError, ValueError, NameError):
        return (Exception,)
    if not params or params[0].name not in hints:
        return (Exception,)
    hint = hints[params[0].name]
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    found = tuple(t for t in options if isinstance(t, type) and issubclass(t, Exception))
    return found or (Exception,)


def tools_condition(state: Any, messages_key: str = "messages") -> Literal["tools", "__end__"]:
    """Route to "tools" when the last message asks for tool calls, else to END."""
    if isinstance(state, list):
        messages = state
    else:
        messages = _messages_of(state, messages_key)
    if not messages:
        raise ValueError(f"No messages found in input state to tool_edge: {state!r:.200}")
    # read as an attribute, as LangGraph does: messages in a state always have it (a plain
    # dict given to this function directly does not, and routes to END there too)
    return "tools" if getattr(messages[-1], "tool_calls", None) else END  # type: ignore[return-value]
