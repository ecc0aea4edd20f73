"""The benchmark graphs, written once for both engines. Each adapter hands over its engine's
builder API and state classes, so both sides build exactly the same shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import nodes


@dataclass(frozen=True)
class GraphApi:
    state_graph: Any
    start: Any
    end: Any
    send: Any
    interrupt: Any
    linear_state: type
    fan_state: type
    append_state: type
    ask_state: type


class GraphBuilders:
    """Mixin for an adapter: `self.api` names the engine; `saver` is bound at compile."""

    api: GraphApi

    def linear(self, saver: Any) -> Any:
        api = self.api
        graph = api.state_graph(api.linear_state)
        names = nodes.linear_node_names()
        for name in names:
            graph.add_node(name, nodes.linear_step)
        graph.add_edge(api.start, names[0])
        for a, b in zip(names, names[1:], strict=False):
            graph.add_edge(a, b)
        graph.add_edge(names[-1], api.end)
        return graph.compile(checkpointer=saver)

    def fanout(self, saver: Any) -> Any:
        api = self.api
        graph = api.state_graph(api.fan_state)
        graph.add_node("dispatch", nodes.dispatch)
        graph.add_node("worker", nodes.worker)
        graph.add_node("join", nodes.join)
        graph.add_edge(api.start, "dispatch")
        graph.add_conditional_edges("dispatch", nodes.make_fan_out(api.send), ["worker"])
        graph.add_edge("worker", "join")
        graph.add_conditional_edges("join", nodes.make_after_join(api.end), ["dispatch", api.end])
        return graph.compile(checkpointer=saver)

    def appender(self, saver: Any, payloads: list[str]) -> Any:
        api = self.api
        graph = api.state_graph(api.append_state)
        graph.add_node("append", nodes.make_append(payloads))
        graph.add_edge(api.start, "append")
        graph.add_conditional_edges(
            "append", nodes.make_after_append(api.end), ["append", api.end]
        )
        return graph.compile(checkpointer=saver)

    def asker(self, saver: Any) -> Any:
        api = self.api
        graph = api.state_graph(api.ask_state)
        graph.add_node("ask", nodes.make_ask(api.interrupt))
        graph.add_edge(api.start, "ask")
        graph.add_edge("ask", api.end)
        return graph.compile(checkpointer=saver)
