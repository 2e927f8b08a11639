"""What a page keeps per session is bounded per client address (`ui.sessions`): strangers cannot evict it."""

from __future__ import annotations

from ui.sessions import Bindings


def test_page_bindings_are_bounded_per_address_and_a_flood_keeps_others(monkeypatch):
    monkeypatch.setenv("MAX_SESSIONS_PER_ADDRESS", "20")
    bindings = Bindings(capacity=1000)
    bindings.put("203.0.113.1", "visitor", "visitor:b")
    for n in range(1100):
        bindings.put("203.0.113.66", f"stranger-{n}", "visitor:s")
    assert bindings.get("visitor") == "visitor:b"
    assert bindings.get("stranger-1099") == "visitor:s" and bindings.get("stranger-1079") is None
