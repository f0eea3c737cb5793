"""Did-you-mean for a mistyped name: unlike plain ``difflib``, a shared prefix counts extra (``bilinear`` ->
``bilateral``, not ``linear``), an abbreviation is close (``acc`` -> ``accuracy``), case-only differences best."""
from __future__ import annotations

import difflib
import os
from typing import Any, Iterable

__all__ = ["close_matches", "did_you_mean", "similarity"]


def similarity(word: str, name: str) -> float:
    """A score >= 0 of how likely ``word`` is a mistyping of ``name`` (higher is closer; 0.6 is close)."""
    w, n = word.lower(), name.lower()
    if w == n:
        return 2.0 if word != name else 3.0  # 2.0: only the case differs
    ratio = difflib.SequenceMatcher(None, w, n).ratio()
    if len(w) >= 2 and n.startswith(w):  # an abbreviation: acc -> accuracy
        ratio = max(ratio, 0.75)
    if ratio < 0.5:  # a shared prefix alone does not make two words alike
        return ratio
    return ratio + 0.15 * min(len(os.path.commonprefix([w, n])), 4)


def close_matches(word: Any, names: Iterable[Any], n: int = 2, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``names`` that ``word`` may have meant, best first; a runner-up only when it is
    about as close as the best."""
    if not isinstance(word, str) or not word:
        return []
    scored = sorted(((similarity(word, str(x)), str(x)) for x in names), key=lambda s: -s[0])
    scored = [(s, x) for s, x in scored if s >= cutoff]
    return [x for s, x in scored[:n] if s >= scored[0][0] - 0.1]


def did_you_mean(word: Any, names: Iterable[Any], n: int = 2) -> str:
    """``"; did you mean 'x'?"`` (with a note when only the case differs), or ``""`` when nothing is close."""
    close = close_matches(word, list(names), n=n)
    if not close:
        return ""
    if isinstance(word, str) and close[0].lower() == word.lower():
        return f"; did you mean {close[0]!r}? (names are case-sensitive)"
    return f"; did you mean {' or '.join(repr(c) for c in close)}?"
