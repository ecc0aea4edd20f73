"""The store's search filters (how-to "Add long-term memory"): equality on a value's keys, a
nested dict compared on the keys it names, a list item by item, the comparison operators
$eq, $ne, $gt, $gte, $lt and $lte, a missing key read as None; and put(..., None) deletes."""

from langgraph.store.memory import InMemoryStore


def main(checkpointer):
    store = InMemoryStore()
    for key, value in {
        "a": {"kind": "note", "score": 3, "meta": {"lang": "en", "tags": ["x", "y"]}},
        "b": {"kind": "note", "score": 7, "meta": {"lang": "fr", "tags": ["y"]}},
        "c": {"kind": "todo", "score": 5.5, "done": False},
        "d": {"kind": "todo", "score": 1, "name": "beta"},
    }.items():
        store.put(("memories", "ann"), key, value)

    def keys(**filter_):
        return sorted(i.key for i in store.search(("memories",), filter=filter_ or None))

    seen = [
        ("all", keys()),
        ("kind", keys(kind="note")),
        ("nested", keys(meta={"lang": "fr"})),
        ("list", keys(meta={"tags": ["x", "y"]})),
        ("gt", keys(score={"$gt": 3})),
        ("range", keys(score={"$gte": 3, "$lt": 7})),
        ("ne", keys(kind={"$ne": "note"})),
        ("eq", keys(score={"$eq": 7})),
        ("missing is none", keys(done=None)),
        ("false", keys(done=False)),
    ]
    store.put(("memories", "ann"), "d", None)
    seen.append(("after put None", keys()))
    return seen
