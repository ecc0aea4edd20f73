"""Semantic memory (how-to "Add semantic search to your agent's memory"), with a deterministic
embedding function in place of a model: `InMemoryStore(index=...)`, `search(query=...)` ranked
by similarity with scores, `filter=` beside it, and an item put with `index=False` left out."""

from langgraph.store.memory import InMemoryStore

WORDS = ["pizza", "tea", "cat", "dog"]


def embed(texts):
    return [[float(text.count(word)) + 0.01 for word in WORDS] for text in texts]


def main(checkpointer):
    store = InMemoryStore(index={"embed": embed, "dims": 4, "fields": ["text"]})
    store.put(("memories", "ada"), "1", {"text": "I love pizza and more pizza"})
    store.put(("memories", "ada"), "2", {"text": "tea with my cat"})
    store.put(("memories", "ada"), "3", {"text": "dog dog dog", "kind": "pet"})
    store.put(("memories", "ada"), "4", {"text": "pizza secret"}, index=False)
    ranked = store.search(("memories",), query="pizza", limit=3)
    seen = [("ranked", [(i.key, round(i.score, 6)) for i in ranked])]
    pets = store.search(("memories",), query="cat", filter={"kind": "pet"})
    seen.append(("filtered", [(i.key, round(i.score, 6)) for i in pets]))
    return seen
