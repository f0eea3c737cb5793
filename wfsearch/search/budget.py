"""The search budget counts distinct architectures: a re-sample is told its known result but spends nothing, and a
space smaller than the budget ends the search with one clear line."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

# re-samples in a row after which a space whose size is unknown counts as exhausted
MAX_REPEATS_IN_A_ROW = 200


@dataclass
class DistinctBudget:
    """``total`` distinct architectures to finish, the identities of those ``finished``, the ``space_size``."""

    total: int
    space_size: int | None = None
    finished: set[str] = field(default_factory=set)
    repeats_in_a_row: int = 0
    repeats: int = 0
    max_repeats_in_a_row: int = MAX_REPEATS_IN_A_ROW

    @staticmethod
    def identity(arch_hash: str | None, params: dict[str, Any] | None = None) -> str:
        """An architecture's identity: its hash, or the sampled knobs of one that does not build."""
        return arch_hash or "params:" + json.dumps(params or {}, sort_keys=True, default=str)

    @property
    def count(self) -> int:
        return len(self.finished)

    def add(self, identity: str) -> bool:
        """Count a finished architecture; False when it had finished before (a repeat)."""
        if identity in self.finished:
            return False
        self.finished.add(identity)
        return True

    def sampled_new(self) -> None:
        self.repeats_in_a_row = 0

    def sampled_repeat(self) -> None:
        self.repeats += 1
        self.repeats_in_a_row += 1

    def reached(self) -> bool:
        return self.count >= self.total

    @property
    def stop_reason(self) -> str | None:
        """Why the search cannot reach ``total`` distinct architectures (None while it can)."""
        if self.reached():
            return None
        if self.space_size is not None and self.count >= self.space_size:
            return (f"the space has {self.space_size} distinct architecture{'s' if self.space_size != 1 else ''} and "
                    f"all {self.count} are evaluated, fewer than study.trials = {self.total}: stopping "
                    "(widen the space or lower study.trials)")
        if self.repeats_in_a_row >= self.max_repeats_in_a_row:
            return (f"the sampler proposed {self.repeats_in_a_row} already-evaluated architectures in a row after "
                    f"{self.count} distinct ones: the space looks exhausted, stopping below study.trials = "
                    f"{self.total}")
        return None
