"""The project's one bounded cache: least recently used entries go first.

    cache = LRUCache(200_000)                          # at most 200,000 entries
    kv = LRUCache(8192, weigh=lambda v: len(v[0]))     # at most 8,192 tokens held
    cache.put(key, value); cache.get(key)              # get refreshes; peek and `in` do not

Used by the verdict cache (verifiers/grader.py), the step-score and KV-prefix caches of
the PRM/ORM backends (rewards/hf.py, rewards/vllm_backend.py) and TinyRM's pair cache
(rewards/tinyrm.py). It lives in `verifiers`, the bottom package that imports nothing
else of the project, so that every package may use it. Standard library only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class LRUCache:
    """A mapping bounded by `capacity`, forgetting the least recently used entries first.

    Each entry weighs 1, or `weigh(value)` (e.g. the tokens it holds); after a `put` the
    oldest entries are dropped until the total weight is at most `capacity`. An entry
    heavier than `capacity` is not kept. `get` marks an entry as just used; `peek` and
    `key in cache` do not. Safe to share between threads.
    """

    def __init__(self, capacity: int, *, weigh: Callable[[Any], int] | None = None) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 0:
            raise ValueError(f"LRUCache capacity must be an int >= 0, got {capacity!r}.")
        self.capacity = capacity
        self._weigh = weigh
        self._data: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()  # key -> (value, weight)
        self._weight = 0
        self._lock = threading.Lock()

    @property
    def weight(self) -> int:
        """Total weight held (the number of entries when unweighted)."""
        return self._weight

    def get(self, key: Hashable, default=None):
        """The value of `key` (marked as just used), or `default`."""
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return default
            self._data.move_to_end(key)
            return entry[0]

    def peek(self, key: Hashable, default=None):
        """The value of `key`, or `default`, leaving the eviction order as it is."""
        with self._lock:
            entry = self._data.get(key)
            return default if entry is None else entry[0]

    def put(self, key: Hashable, value) -> None:
        """Store `value` under `key` as the most recently used entry, then drop the least
        recently used ones while the total weight is over capacity."""
        w = 1 if self._weigh is None else int(self._weigh(value))
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            if w > self.capacity:
                return
            self._data[key] = (value, w)
            self._weight += w
            while self._weight > self.capacity:
                _, (_, dropped) = self._data.popitem(last=False)
                self._weight -= dropped

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._weight = 0

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        return len(self._data)
