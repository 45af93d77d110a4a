"""A map that cannot grow without bound, for what the probe remembers of
sockets and processes on a node that churns through millions of both."""

import time
from collections import OrderedDict
from typing import Tuple


class BoundedMap:
    """A map bounded by count and by age: the least recently put go first,
    and an entry put more than ``max_age`` seconds ago goes at the next put."""

    def __init__(self, limit: int, max_age: float = float("inf")):
        self._items: "OrderedDict[object, Tuple[float, object]]" = OrderedDict()
        self._limit = limit
        self._max_age = max_age

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        return key in self._items

    def get(self, key, default=None):
        item = self._items.get(key)
        return default if item is None else item[1]

    def pop(self, key, default=None):
        item = self._items.pop(key, None)
        return default if item is None else item[1]

    def put(self, key, value) -> None:
        now = time.monotonic()
        self._items[key] = (now, value)
        self._items.move_to_end(key)
        if len(self._items) > self._limit:
            self._items.popitem(last=False)
        while now - next(iter(self._items.values()))[0] > self._max_age:
            self._items.popitem(last=False)
