"""The checkpointing tutorial from the API contract, runnable as written:
`python examples/tutorial.py` (no Django settings needed). Give a file path as the first
argument to keep the checkpoints in SQLite instead of memory."""

import sys
from dataclasses import dataclass, field
from typing import Annotated

from orchestration import END, StateGraph
from orchestration.checkpoint import CheckpointConfig, InMemoryCheckpointSaver, SqliteSaver
from orchestration.reducers import last_value, topic


@dataclass
class WorkflowState:
    steps_completed: Annotated[list[str], topic] = field(default_factory=list)
    result: Annotated[str, last_value] = ""


def step_one(state: WorkflowState) -> dict:
    return {"steps_completed": ["step_one"]}


def step_two(state: WorkflowState) -> dict:
    done = [*state.steps_completed, "step_two"]
    return {"steps_completed": ["step_two"], "result": f"Completed: {done}"}


graph = StateGraph(WorkflowState)
graph.add_node("step_one", step_one)
graph.add_node("step_two", step_two)
graph.set_entry_point("step_one").add_edge("step_one", "step_two").add_edge("step_two", END)
compiled = graph.compile()

saver = SqliteSaver(sys.argv[1]) if len(sys.argv) > 1 else InMemoryCheckpointSaver()
checkpointed = compiled.with_checkpoint_saver(saver)
config = CheckpointConfig("session-1")
state = checkpointed.invoke(WorkflowState(), config)
assert state.result == "Completed: ['step_one', 'step_two']"

first = saver.list(CheckpointConfig("session-1"), None)[0]  # oldest first
forked = checkpointed.invoke(WorkflowState(), config.with_checkpoint_id(first.checkpoint.id))
assert forked.result == state.result

for snapshot in checkpointed.get_state_history(config):
    print(snapshot.metadata.step, snapshot.metadata.source, snapshot.next, snapshot.values)
