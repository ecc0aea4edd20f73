"""Long-term memory (how-to "Add memory"): `store.search` returns search items, each with a
`score` (None without a semantic query) beside its namespace, key and value."""

from langgraph.store.memory import InMemoryStore


def main(checkpointer):
    store = InMemoryStore()
    store.put(("users", "ada"), "food", {"likes": "pizza"})
    store.put(("users", "ada"), "drink", {"likes": "tea"})
    found = store.search(("users",), filter={"likes": "tea"})
    seen = [("found", [(i.namespace, i.key, i.value, i.score) for i in found])]
    seen.append(("keys", sorted(found[0].dict())))
    return seen
