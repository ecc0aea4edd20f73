"""Time travel (how-to "Use time-travel"): replay and fork a joke workflow."""

from typing import NotRequired

from langgraph.graph import END, START, StateGraph
from scripted import ScriptedModel
from typing_extensions import TypedDict

llm = ScriptedModel({
    "Give me a funny topic for a joke": "socks",
    "Write a short joke about socks": "Why do socks hide? They fear the dryer.",
    "Write a short joke about chickens": "Why did the chicken cross? Checkpoints.",
})


class State(TypedDict):
    topic: NotRequired[str]
    joke: NotRequired[str]


def generate_topic(state: State):
    msg = llm.invoke("Give me a funny topic for a joke")
    return {"topic": msg["content"]}


def write_joke(state: State):
    msg = llm.invoke(f"Write a short joke about {state['topic']}")
    return {"joke": msg["content"]}


def main(checkpointer):
    workflow = StateGraph(State)
    workflow.add_node("generate_topic", generate_topic)
    workflow.add_node("write_joke", write_joke)
    workflow.add_edge(START, "generate_topic")
    workflow.add_edge("generate_topic", "write_joke")
    workflow.add_edge("write_joke", END)
    graph = workflow.compile(checkpointer=checkpointer)

    seen = []
    config = {"configurable": {"thread_id": "jokes"}}
    seen.append(("run", graph.invoke({}, config)))
    states = list(graph.get_state_history(config))
    seen.append(("history", states))

    selected = next(s for s in states if s.next == ("write_joke",))
    seen.append(("selected", selected))
    new_config = graph.update_state(selected.config, values={"topic": "chickens"})
    seen.append(("fork config has an id", "checkpoint_id" in new_config["configurable"]))
    seen.append(("fork", graph.invoke(None, new_config)))
    seen.append(("replay", graph.invoke(None, selected.config)))
    seen.append(("model calls", llm.calls))
    sources = [s.metadata["source"] for s in graph.get_state_history(config)]
    seen.append(("updates in history", sources.count("update")))
    return seen
