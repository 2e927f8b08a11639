"""Sessions strangers cannot evict: Gradio's session state, bounded per client address.

Gradio 6.17.3 keeps each session's state (`gradio.state_holder.StateHolder`: an LRU of at most
`state_session_capacity` sessions, `MAX_SESSIONS`) and creates one on any request that names a new
session hash, so ~1,100 cheap joins from one address would push every other visitor's state out (their
Arena pair, Compare results). `bound(demo)` makes the page's holder remember which client address
opened each session (the door puts the address of the request in `service.caller.REQUEST_ADDRESS`):
an address keeps at most `MAX_SESSIONS_PER_ADDRESS` (default 20) live sessions, its oldest going first,
and when the holder is full the session that goes is the oldest of the address holding the most,
never a session of an address below that.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from gradio.state_holder import StateHolder

from engines.settings import settings
from service.caller import REQUEST_ADDRESS


def per_address() -> int:
    """`MAX_SESSIONS_PER_ADDRESS` (default 20)."""
    return settings().max_sessions_per_address


class BoundedStateHolder(StateHolder):
    """Gradio's `StateHolder`, with sessions counted and evicted per client address."""

    def adopt(self) -> BoundedStateHolder:
        self._owners: dict[str, str] = {}  # session -> address that opened it
        self._by_address: dict[str, OrderedDict[str, None]] = {}
        self._bound_lock = threading.RLock()
        return self

    def __getitem__(self, session_id: str):
        with self._bound_lock:
            if session_id not in self.session_data:
                self._opened(session_id, REQUEST_ADDRESS.get(None) or "unknown")
            else:
                address = self._owners.get(session_id)
                if address in self._by_address:
                    self._by_address[address].move_to_end(session_id)
        return super().__getitem__(session_id)

    def update(self, session_id: str):
        with self._bound_lock:
            while len(self.session_data) > self.capacity:
                self._evict(self._largest())
            super().update(session_id)

    def _opened(self, session_id: str, address: str) -> None:
        sessions = self._by_address.setdefault(address, OrderedDict())
        sessions[session_id] = None
        self._owners[session_id] = address
        while len(sessions) > per_address():
            self._evict(address)
        while len(self.session_data) >= self.capacity and self.session_data:
            self._evict(self._largest())

    def _largest(self) -> str:
        return max(self._by_address, key=lambda a: len(self._by_address[a]))

    def _evict(self, address: str) -> None:
        sessions = self._by_address.get(address)
        if not sessions:
            self._by_address.pop(address, None)
            if self.session_data:  # not one of ours: Gradio's own order
                gone, _ = self.session_data.popitem(last=False)
                self._forget(gone)
            return
        gone, _ = sessions.popitem(last=False)
        if not sessions:
            del self._by_address[address]
        self._owners.pop(gone, None)
        with self.lock:
            self.session_data.pop(gone, None)
            self.time_last_used.pop(gone, None)

    def _forget(self, session_id: str) -> None:
        address = self._owners.pop(session_id, None)
        if address in self._by_address:
            self._by_address[address].pop(session_id, None)
            if not self._by_address[address]:
                del self._by_address[address]

    def sessions_of(self, address: str) -> int:
        with self._bound_lock:
            return len(self._by_address.get(address, ()))


def bound(demo) -> BoundedStateHolder:
    """Bound the launched page's session state per client address (before any session is opened)."""
    holder = demo.state_holder  # the same object the server app and the queue use
    holder.__class__ = BoundedStateHolder
    return holder.adopt()


class Bindings:
    """A value per page session (e.g. whose lexicon the session speaks with), bounded like the sessions:
    at most `MAX_SESSIONS_PER_ADDRESS` per client address (its oldest go) and `capacity` in all (the oldest
    of the address holding the most go), so that one address cannot push another's bindings out."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._values: dict[str, object] = {}
        self._by_address: dict[str, OrderedDict[str, None]] = {}
        self._address: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(self, address: str, session: str, value: object) -> None:
        with self._lock:
            self._drop(session)
            self._values[session], self._address[session] = value, address
            self._by_address.setdefault(address, OrderedDict())[session] = None
            while len(self._by_address[address]) > per_address():
                self._drop(next(iter(self._by_address[address])))
            while len(self._values) > self.capacity:
                largest = max(self._by_address, key=lambda a: len(self._by_address[a]))
                self._drop(next(iter(self._by_address[largest])))

    def get(self, session: str) -> object | None:
        with self._lock:
            return self._values.get(session)

    def _drop(self, session: str) -> None:
        self._values.pop(session, None)
        address = self._address.pop(session, None)
        if address is not None:
            self._by_address[address].pop(session, None)
            if not self._by_address[address]:
                del self._by_address[address]
