"""The blind A/B arena: runs and votes in SQLite (`store`), Bradley–Terry ratings and how often the
better-measured clip was chosen (`statistics`), what a taken vote is worth (`trust`), and which board and
which systems (`board`). Which votes are taken at all is `evaluation.ballot`.

Imports run one way inside: `store` -> `statistics` -> `board`, and `store` -> `trust`. Below: the names
code outside the package uses.
"""

from .board import (
    BUILTIN,
    REASONS,
    TYPED,
    board_keys,
    board_name,
    configured_systems,
    from_screen,
    reason_keys,
    split_system,
    system_id,
)
from .statistics import agreement, better_measured, min_votes_to_rank, rank
from .store import NOT_FINISHED, SCHEMA_VERSION, Arena, ArenaUnavailable, default_db_path
from .trust import ALIKE, ANONYMOUS, FAST, HOURLY, ONE_SIDED, REPEAT, UNHEARD, Rules, flags, require_login

__all__ = [
    "ALIKE", "ANONYMOUS", "BUILTIN", "FAST", "HOURLY", "NOT_FINISHED", "ONE_SIDED", "REASONS", "REPEAT",
    "SCHEMA_VERSION", "TYPED", "UNHEARD", "Arena", "ArenaUnavailable", "Rules", "agreement",
    "better_measured", "board_keys", "board_name", "configured_systems", "default_db_path", "flags", "from_screen",
    "min_votes_to_rank", "rank", "reason_keys", "require_login", "split_system", "system_id",
]  # fmt: skip
