"""A topic trie: which subscription patterns (`*` one segment, `#` zero or more) match a topic.

Matching walks the topic's segments once per branch a pattern can take (literal, `*`,
`#`), so its cost depends on the topic and the shape of the patterns, not on how many
subscriptions there are.
"""

from __future__ import annotations

from typing import Any


class _Node:
    __slots__ = ("children", "star", "hash", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.hash: _Node | None = None
        self.values: list[Any] = []


class TopicTrie:
    """Maps patterns to values; `match(topic)` returns the values of every matching pattern."""

    def __init__(self) -> None:
        self._root = _Node()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, pattern: str, value: Any) -> None:
        node = self._root
        for segment in pattern.split("."):
            if segment == "*":
                if node.star is None:
                    node.star = _Node()
                node = node.star
            elif segment == "#":
                if node.hash is None:
                    node.hash = _Node()
                node = node.hash
            else:
                child = node.children.get(segment)
                if child is None:
                    child = node.children[segment] = _Node()
                node = child
        node.values.append(value)
        self._size += 1

    def remove(self, pattern: str, value: Any) -> bool:
        path: list[tuple[_Node, str]] = []
        node: _Node | None = self._root
        for segment in pattern.split("."):
            path.append((node, segment))
            node = node.star if segment == "*" else node.hash if segment == "#" else node.children.get(segment)
            if node is None:
                return False
        for index, existing in enumerate(node.values):
            if existing is value:
                del node.values[index]
                break
        else:
            return False
        self._size -= 1
        # Prune branches left empty, so a churn of subscriptions does not grow the trie.
        for parent, segment in reversed(path):
            if node.values or node.children or node.star or node.hash:
                break
            if segment == "*":
                parent.star = None
            elif segment == "#":
                parent.hash = None
            else:
                del parent.children[segment]
            node = parent
        return True

    def match(self, topic: str) -> list[Any]:
        segments = topic.split(".")
        last = len(segments)
        found: list[Any] = []
        via_hash = False

        def walk(node: _Node, index: int) -> None:
            nonlocal via_hash
            if node.hash is not None:
                # `#` takes zero or more segments: try every split point after it.
                via_hash = True
                for rest in range(index, last + 1):
                    walk(node.hash, rest)
            if index == last:
                if node.values:
                    found.extend(node.values)
                return
            child = node.children.get(segments[index])
            if child is not None:
                walk(child, index + 1)
            if node.star is not None:
                walk(node.star, index + 1)

        walk(self._root, 0)
        if via_hash and len(found) > 1:
            # Patterns like `#.#` reach one node along several paths: report each value once.
            found = list({id(value): value for value in found}.values())
        return found
