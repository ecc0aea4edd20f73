"""`compiled.get_graph()`: the graph's shape as LangGraph's `get_graph()` returns it (nodes,
edges, conditional edges marked), drawn as Mermaid text with `draw_mermaid()`, which notebooks
and READMEs show and any Mermaid viewer renders.

Edges: plain and fan-in edges are solid; a router's (its path map, else its `-> Literal[...]`
return annotation, else every node and END, as LangGraph draws a router it cannot read) and a
`Command`'s (its return annotation or `destinations=`) are conditional. A node with no
outgoing edge ends its path: drawn with an edge to END, as it runs. Under a node's name the
drawing lists what LangGraph's does: its metadata, `defer`, its static breakpoints and a
ToolNode's tools.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestration.spec import ANYWHERE
from orchestration.types import END, START

if TYPE_CHECKING:
    from orchestration.spec import GraphSpec


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    name: str
    data: Any = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    data: Any = None
    conditional: bool = False


@dataclass(slots=True)
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def draw_mermaid(self, *, with_styles: bool = True, curve_style: str = "linear") -> str:
        """Mermaid `graph TD` text in LangGraph's layout: START and END rounded, conditional
        edges dotted."""
        lines = ["---", "config:", "  flowchart:", f"    curve: {curve_style}", "---",
                 "graph TD;"] if with_styles else ["graph TD;"]
        for node_id in self.nodes:
            if node_id == START:
                lines.append(f"\t{_id(node_id)}([<p>{node_id}</p>]):::first")
            elif node_id == END:
                lines.append(f"\t{_id(node_id)}([<p>{node_id}</p>]):::last")
            else:
                label = _label(node_id)
                notes = _metadata_lines(self.nodes[node_id].metadata or {})
                if notes:
                    label += "<hr/><small><em>" + "\n".join(notes) + "</em></small>"
                lines.append(f"\t{_id(node_id)}({label})")
        for edge in self.edges:
            arrow = "-.->" if edge.conditional else "-->"
            lines.append(f"\t{_id(edge.source)} {arrow} {_id(edge.target)};")
        if with_styles:
            lines += ["\tclassDef default fill:#f2f0ff,line-height:1.2",
                      "\tclassDef first fill-opacity:0", "\tclassDef last fill:#bfb6fc"]
        return "\n".join(lines) + "\n"

    def draw_mermaid_png(self, *args: Any, **kwargs: Any) -> bytes:
        raise NotImplementedError(
            "draw_mermaid_png() sends the graph to a web service in LangGraph (mermaid.ink); "
            "Stepwise works offline: render draw_mermaid()'s text with a Mermaid viewer, or "
            "look at the thread's checkpoint tree in the web app"
        )


def _id(name: str) -> str:
    # Mermaid ids: letters, digits, _ and -; others (a space, a dot) become _
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)


def _label(name: str) -> str:
    return name.replace('"', "#quot;")


# Characters a Mermaid label cannot hold as they are, and their entities (`#` first).
_ESCAPES = {"[": "#91;", "]": "#93;", "(": "#40;", ")": "#41;", "{": "#123;", "}": "#125;",
            '"': "#quot;", "<": "#60;", ">": "#62;", "|": "#124;"}
_SCALARS = (str, int, float, bool)


def _metadata_lines(metadata: dict[str, Any]) -> list[str]:
    """A node's metadata as LangGraph's drawing lists it under the name: `key = value` for
    scalars and lists of scalars (a set sorted), other values left out."""
    lines = []
    for key, value in metadata.items():
        if isinstance(value, _SCALARS):
            shown = str(value)
        elif isinstance(value, list | tuple | set) and all(isinstance(v, _SCALARS) for v in value):
            items = [str(v) for v in value]
            shown = ", ".join(sorted(items) if isinstance(value, set) else items)
        else:
            continue
        text = f"{key} = {shown}".replace("#", "#35;")
        for char, entity in _ESCAPES.items():
            text = text.replace(char, entity)
        lines.append(text)
    return lines


def _drawn_metadata(
    spec: GraphSpec, name: str, before: Collection[str], after: Collection[str]
) -> dict[str, Any] | None:
    """What LangGraph shows of a node: its metadata, `defer`, where a static breakpoint
    stops (`__interrupt`) and a ToolNode's tools."""
    node = spec.nodes[name]
    metadata = dict(node.drawn or {})
    tools = metadata.pop("__tools", None)
    if node.defer:
        metadata["defer"] = True
    stops = [where for where, names in (("before", before), ("after", after)) if name in names]
    if stops:
        metadata["__interrupt"] = ",".join(stops)
    if tools:
        metadata["__tools"] = tools
    return metadata or None


def graph_of(spec: GraphSpec, before: Collection[str] = (), after: Collection[str] = ()) -> Graph:
    """The graph's shape; `before`/`after`: the compiled graph's static breakpoints."""
    graph = Graph()
    names = list(spec.nodes)
    for name in (START, *names, END):
        metadata = _drawn_metadata(spec, name, before, after) if name in spec.nodes else None
        graph.nodes[name] = Node(name, name, None, metadata)
    seen: set[tuple[str, str, bool]] = set()

    def edge(source: str, target: str, conditional: bool) -> None:
        if (source, target, conditional) not in seen:
            seen.add((source, target, conditional))
            graph.edges.append(Edge(source, target, None, conditional))

    everywhere = (*names, END)
    leaves: list[str] = []
    for source in (START, *names):
        out = len(graph.edges)
        for target in spec.edges.get(source, ()):
            edge(source, target, False)
        for branch in spec.branches.get(source, ()):
            targets = branch.targets()
            for target in everywhere if targets == ANYWHERE else targets:
                edge(source, target, True)
        node = spec.nodes.get(source)
        if node is not None and node.goto_targets:
            goto = everywhere if node.goto_targets == ANYWHERE else node.goto_targets
            for target in goto:
                edge(source, target, True)
        if source != START and len(graph.edges) == out:
            leaves.append(source)
    for sources, target in spec.joins:
        for source in sources:
            edge(source, target, False)
            if source in leaves:
                leaves.remove(source)
    for leaf in leaves:
        edge(leaf, END, False)
    # LangGraph's order: by source and target name (START's edges sort first), the plain
    # edges to END last
    graph.edges.sort(key=lambda e: (e.target == END and not e.conditional, e.source, e.target))
    return graph
