"""A bounded least-recently-used cache: at most `max_items` entries and `max_bytes` in all.

For caches keyed by what visitors send (one clone prompt per uploaded clip): without bounds they grow
by one entry per visitor for as long as the process lives. Sizes are measured (`nbytes` of arrays and
tensors, lengths of strings and bytes, recursively through containers and objects), not guessed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


def sizeof(value: Any, _seen: set[int] | None = None) -> int:
    """Approximate bytes held by a value: array and tensor data, strings and bytes, recursively."""
    seen = set() if _seen is None else _seen
    if id(value) in seen or value is None:
        return 0
    seen.add(id(value))
    if hasattr(value, "element_size") and hasattr(value, "nelement"):  # torch.Tensor
        return int(value.element_size() * value.nelement())
    if hasattr(value, "nbytes") and not isinstance(value, type):  # numpy arrays and scalars
        return int(value.nbytes)
    if isinstance(value, str | bytes | bytearray):
        return len(value)
    if isinstance(value, dict):
        return sum(sizeof(k, seen) + sizeof(v, seen) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return sum(sizeof(v, seen) for v in value)
    if hasattr(value, "__dict__"):
        return sizeof(vars(value), seen)
    return 8


class BoundedLRU:
    """A thread-safe mapping that evicts its least recently used entries past either bound."""

    def __init__(self, max_items: int, max_bytes: int, measure: Callable[[Any], int] = sizeof) -> None:
        self.max_items, self.max_bytes, self.measure = max_items, max_bytes, measure
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key not in self._entries:
                return default
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def put(self, key: Hashable, value: Any) -> None:
        """Store a value (one larger than `max_bytes` on its own is not kept)."""
        size = self.measure(value)
        with self._lock:
            if key in self._entries:
                self._bytes -= self._entries.pop(key)[1]
            if size > self.max_bytes:
                return
            self._entries[key] = (value, size)
            self._bytes += size
            while len(self._entries) > self.max_items or self._bytes > self.max_bytes:
                self._bytes -= self._entries.popitem(last=False)[1][1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """Bytes held by the entries, as measured when they were stored."""
        return self._bytes
