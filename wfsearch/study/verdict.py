"""The proxy's quality verdict stored with a study (``proxy-check SPEC --record``, attribute ``proxy_verdict``:
``passed``, ``line``, the statistics and ``proxy_key``, the identity of the proxy section it was measured on),
and the line `run`, `show` and the report print from it.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

VERDICT_ATTR = "proxy_verdict"
_IGNORED = ("device", "dtype", "num_threads", "eval_batch_size")  # do not change what a run measures


def proxy_key(proxy: Mapping[str, Any]) -> str:
    """Identity of a proxy section (its JSON form), ignoring the keys that only say where it runs."""
    d = {k: v for k, v in proxy.items() if k not in _IGNORED}
    if isinstance(d.get("dataset"), dict):
        d["dataset"] = {k: v for k, v in d["dataset"].items() if k not in ("num_workers",)}
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def verdict_line(user_attrs: Mapping[str, Any], proxy: Mapping[str, Any] | None = None,
                 spec_path: str | None = None) -> str:
    """``proxy check: PASS ...`` / ``FAIL ...``, or that there is none for this proxy and how to measure it."""
    v = user_attrs.get(VERDICT_ATTR)
    how = f"measure it with `wfsearch proxy-check {spec_path or 'SPEC'} --references --long-factor 4 --record`"
    if not isinstance(v, Mapping) or not isinstance(v.get("line"), str):
        return f"proxy check: none recorded, so the ranking's reliability is unknown; {how}"
    if proxy is not None and v.get("proxy_key") != proxy_key(proxy):
        return f"proxy check: recorded for another proxy setting ({v['line'][:60]}...); {how}"
    return f"proxy check: {v['line']}"


def verdict_passed(user_attrs: Mapping[str, Any], proxy: Mapping[str, Any] | None = None) -> bool | None:
    """True/False for a recorded verdict of this proxy, None when there is none for it."""
    v = user_attrs.get(VERDICT_ATTR)
    if not isinstance(v, Mapping) or (proxy is not None and v.get("proxy_key") != proxy_key(proxy)):
        return None
    return bool(v.get("passed"))
