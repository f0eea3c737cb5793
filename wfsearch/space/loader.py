"""Loading a spec: strict YAML, ``extends`` composition, ``--set`` overrides; every mistake is one `UserError`
line ``<file>: <key.path>: <value>: <rule and fix>`` naming the file that set the key."""
from __future__ import annotations

import copy
import os
import re
import stat
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml
from pydantic import BaseModel, ValidationError

from wfsearch.errors import UserError
from wfsearch.suggest import close_matches, did_you_mean

from .checks import MISSING, SpecIssue, check
from .spec import _DEVICE_RE, _NAME_RE, MAX_CHOICES, SpaceSpec

Path_ = tuple  # a key path: keys (str) and list indices (int)
TOP = "(top level)"
SECTIONS_WITH_REMOVAL = ("base", "space")  # where a null entry removes an inherited one
# bounds on what a spec may hold, so hostile input fails fast with bounded memory instead of hanging
MAX_SPEC_BYTES = 500_000  # a spec is a few KB; this is a hundred times that
MAX_DEPTH = 64  # nesting of mappings and lists
MAX_NODES = 50_000  # values in one document, every alias counted as what it expands to
MAX_EXTENDS = 32  # files in one extends chain


_FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when PyYAML has it: ~10x faster


class StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` reading ``1e-3`` and ``30e6`` as floats (YAML 1.2) and dates as strings."""


StrictLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))

_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}


def key_path(path: Path_) -> str:
    """``("space", "rank_ratio", "choice", 2)`` -> ``space.rank_ratio.choice[2]``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or TOP


def _show(value: Any) -> str:
    text = repr(value).replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


def _line(label: str, where: str, value: Any, rule: str) -> UserError:
    shown = "(missing)" if value is MISSING else _show(value)
    return UserError(f"{label}: {where}: {shown}: {' '.join(str(rule).split())}")


def _check_shape(text: str, label: str) -> None:
    """Refuse oversized or deeply nested YAML before building it: the parser's events are read one by one
    (no recursion, nothing kept), so a hostile file costs a bounded scan."""
    if len(text) > MAX_SPEC_BYTES:
        raise UserError(f"{label}: (file): {len(text):,} characters: a spec holds at most {MAX_SPEC_BYTES:,}; "
                        "a design space is a few lines of YAML (use {int: [low, high]} for long ranges)")
    for loader in (_FastLoader, yaml.SafeLoader):  # libyaml refuses deep nesting while scanning: look again
        depth = nodes = 0
        seqs: list[list[int]] = []  # per open collection: [values so far] for lists, [] for mappings
        try:
            for event in yaml.parse(text, Loader=loader):
                if isinstance(event, yaml.NodeEvent):
                    line = event.start_mark.line + 1
                    nodes += 1
                    if nodes > MAX_NODES:
                        raise UserError(f"{label}: line {line}: more than {MAX_NODES:,} values: a spec is a few "
                                        "lines of YAML (use {int: [low, high]} for long ranges)")
                    if seqs and seqs[-1]:
                        seqs[-1][0] += 1
                        if seqs[-1][0] > MAX_CHOICES:
                            raise UserError(f"{label}: line {line}: a list of more than {MAX_CHOICES:,} values; a "
                                            f"choice lists at most {MAX_CHOICES:,} (use {{int: [low, high], step: N}} "
                                            "for a long range)")
                if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                    depth += 1
                    if depth > MAX_DEPTH:
                        raise _too_deep(label, event.start_mark)
                    seqs.append([0] if isinstance(event, yaml.SequenceStartEvent) else [])
                elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                    depth -= 1
                    seqs.pop()
            return
        except yaml.YAMLError:  # malformed: the strict loader reports it with its position
            continue


def _too_deep(label: str, mark: Any = None) -> UserError:
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(yaml)"
    return UserError(f"{label}: {where}: nesting deeper than {MAX_DEPTH} levels: a spec is a few levels of mappings "
                     "and lists; flatten it")


def parse_yaml(text: str, label: str) -> Any:
    """Parse one YAML document strictly: safe tags only, no duplicate keys, string keys; bounded in size,
    nesting and alias expansion."""
    loader = None
    try:
        try:
            _check_shape(text, label)
            loader = StrictLoader(text)
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(yaml)"
            problem = " ".join((e.problem or e.context or "invalid YAML").split())
            fix = ("a spec is a single YAML document; remove the extra '---'" if "another document" in problem
                   else "check the indentation, colons and quoting there")
            raise UserError(f"{label}: {where}: invalid YAML: {problem}; {fix}") from None
        except yaml.reader.ReaderError as e:
            char = repr(chr(e.character) if isinstance(e.character, int) else e.character)
            raise UserError(f"{label}: position {e.position}: character {char} is not allowed in YAML text "
                            "(a binary file, or a NUL byte?); a spec is a UTF-8 YAML text file") from None
        except yaml.YAMLError as e:
            raise UserError(f"{label}: (yaml): invalid YAML: {' '.join(str(e).split())}") from None
        if node is None:
            return None
        _check_node(node, (), label, {}, frozenset())
        return loader.construct_document(node)
    except RecursionError:  # the bounded scan above should have refused it first
        raise _too_deep(label) from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_node(node: yaml.Node, path: Path_, label: str, sizes: dict[int, int], ancestors: frozenset[int]) -> int:
    """Check safe tags, plain unique keys and no recursive alias; return how many values ``node`` becomes once
    every alias is expanded (memoized per node, so an alias bomb is counted in linear time, refused unbuilt)."""
    where = f"{key_path(path)} (line {node.start_mark.line + 1})"
    if id(node) in ancestors:
        raise UserError(f"{label}: {where}: '*alias': an alias refers to a collection that contains it; "
                        "YAML anchors in a spec may not be recursive")
    if id(node) in sizes:  # an alias to a node already checked
        return sizes[id(node)]
    ancestors = ancestors | {id(node)}
    if node.tag not in _PLAIN_TAGS:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise UserError(f"{label}: {where}: {tag!r}: this YAML tag is not allowed; a spec holds plain mappings, "
                        "lists, strings, numbers, booleans and nulls only")
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_check_node(child, path + (i,), label, sizes, ancestors) for i, child in enumerate(node.value))
    elif isinstance(node, yaml.MappingNode):
        keys: dict[str, int] = {}
        for key, child in node.value:
            total += 1
            if key.tag == "tag:yaml.org,2002:merge":
                total += _check_node(child, path, label, sizes, ancestors)
                continue
            if not isinstance(key, yaml.ScalarNode) or key.tag != "tag:yaml.org,2002:str":
                shown = key.value if isinstance(key, yaml.ScalarNode) else f"<{type(key).__name__}>"
                raise UserError(f"{label}: {key_path(path)} (line {key.start_mark.line + 1}): {_show(shown)}: keys "
                                "must be plain names; quote it or rename it")
            if key.value in keys:
                raise UserError(f"{label}: {key_path(path + (key.value,))} (line {key.start_mark.line + 1}): "
                                f"{_show(key.value)}: duplicate key (first set on line {keys[key.value]}); keep one")
            keys[key.value] = key.start_mark.line + 1
            total += _check_node(child, path + (key.value,), label, sizes, ancestors)
    if total > MAX_NODES:
        raise UserError(f"{label}: line {node.start_mark.line + 1}: {total:,}+ values once its aliases (*name) are "
                        f"expanded; a spec holds at most {MAX_NODES:,}: use fewer or smaller aliases")
    sizes[id(node)] = total
    return total


def read_yaml_text(path: str | os.PathLike, label: str, what: str = "a spec") -> str:
    """The text of a YAML file, read once and bounded: a folder, a FIFO, a device, a file larger than
    ``MAX_SPEC_BYTES`` or not UTF-8 is one `UserError` line (never a wait)."""
    where = f"{label}: (file): {str(path)!r}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO or a device is refused, never waited on
        with open(fd, "rb") as f:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError
            if not stat.S_ISREG(mode):
                raise UserError(f"{where}: not a regular file (a FIFO, a device or a socket); {what} is a YAML file")
            raw = f.read(MAX_SPEC_BYTES + 1)  # never more: a huge file costs one bounded read
        if len(raw) > MAX_SPEC_BYTES:
            raise UserError(f"{where}: larger than {MAX_SPEC_BYTES:,} bytes; {what} is a few lines of YAML")
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = {FileNotFoundError: "no such file; check the path", PermissionError: "permission denied",
               IsADirectoryError: f"is a directory; {what} is a YAML file",
               UnicodeDecodeError: f"not UTF-8 text; {what} is a YAML file"}.get(type(e))
        raise UserError(f"{where}: {why or f'cannot read it ({e.strerror or e})'}") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else (lists included) replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _record_origins(data: Any, label: str, origins: dict[Path_, str], prefix: Path_ = ()) -> None:
    origins[prefix] = label
    for k, v in data.items() if isinstance(data, dict) else ():
        _record_origins(v, label, origins, prefix + (k,))


def _load_tree(path: Path, label: str, chain: tuple[Path, ...]) -> tuple[dict[str, Any], dict[Path_, str], list[str]]:
    """The merged data of ``path`` and its parents, which file set each key, and the files in merge order."""
    if len(chain) >= MAX_EXTENDS:
        raise UserError(f"{label}: extends: a chain of more than {MAX_EXTENDS} files "
                        f"({chain[0].name} -> {chain[1].name if len(chain) > 1 else ''} -> ... -> {path.name}); "
                        "a spec extends a few others; shorten the chain")
    data = parse_yaml(read_yaml_text(path, label, "a spec (such as spaces/predictors.yaml)"), label)
    if data is None:
        raise UserError(f"{label}: {TOP}: None: the file is empty; a spec is a mapping with sections such as "
                        "study, proxy, base and space (see spaces/README.md)")
    if not isinstance(data, dict):
        raise UserError(f"{label}: {TOP}: {_show(data)}: a spec must be a mapping with sections such as "
                        "study, proxy, base and space, not a " + type(data).__name__)
    ext = data.pop("extends", None)
    parents = [ext] if isinstance(ext, str) else ext if ext is not None else []
    if not isinstance(parents, list) or not all(isinstance(p, str) and p for p in parents):
        raise UserError(f"{label}: extends: {_show(ext)}: give a file name or a list of them, relative to this file")
    merged: dict[str, Any] = {}
    origins: dict[Path_, str] = {}
    layers: list[str] = []
    for i, parent in enumerate(parents):
        ppath = (path.parent / parent).resolve()
        plabel = os.path.normpath(os.path.join(os.path.dirname(label), parent))
        where = f"{label}: {'extends' if isinstance(ext, str) else f'extends[{i}]'}: {parent!r}"
        if ppath in chain or ppath == path.resolve():
            raise UserError(f"{where}: circular extends "
                            f"({' -> '.join(p.name for p in chain + (path.resolve(), ppath))}); remove one link")
        if ppath.is_dir():
            raise UserError(f"{where}: is a directory ({ppath}); extends names YAML files, "
                            "e.g. extends: predictors.yaml")
        if not ppath.is_file():
            raise UserError(f"{where}: no such file (looked for {ppath}); paths are relative to the extending file")
        pdata, porigins, players = _load_tree(ppath, plabel, chain + (path.resolve(),))
        merged = _merge(merged, pdata)
        origins.update(porigins)
        layers += players
    _record_origins(data, label, origins)
    return _merge(merged, data), origins, layers + [label]


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], label: str,
                    origins: Optional[dict[Path_, str]] = None) -> dict[str, Any]:
    """Apply ``key.path=value`` strings (value parsed as YAML) to a copy of ``data``."""
    data = copy.deepcopy(data)
    for text in overrides:
        key, eq, raw = str(text).partition("=")
        if not eq or not key.strip():
            raise UserError(f"{label}: --set: {_show(text)}: expected KEY.PATH=VALUE, e.g. --set study.trials=8")
        tokens = key.strip().replace("[", ".").replace("]", "").split(".")
        if not all(tokens):
            raise UserError(f"{label}: --set: {_show(text)}: malformed key {key!r}; write it as dotted names, "
                            "e.g. proxy.dataset.name")
        parts = [int(t) if t.isdigit() else t for t in tokens]
        value = parse_yaml(raw, f"{label} (--set {key.strip()})") if raw.strip() else None
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, dict) and not last and node.get(part) is None:
                node[part] = {}
                if origins is not None:
                    origins[tuple(parts[:depth + 1])] = f"{label} (--set)"
            if not (isinstance(node, dict) or isinstance(node, list) and isinstance(part, int) and part < len(node)):
                if last:
                    raise UserError(f"{label} (--set): {key_path(tuple(parts))}: {_show(text)}: "
                                    f"{key_path(tuple(parts[:-1]))} is not a mapping; cannot set {part!r} inside it")
                raise UserError(f"{label} (--set): {key_path(tuple(parts[:depth + 1]))}: {_show(text)}: "
                                f"{key_path(tuple(parts[:depth]))} has no entry {part!r} to set")
            if last:
                node[part] = value
            else:
                node = node[part]
        if origins is not None:
            _record_origins(value, f"{label} (--set)", origins, tuple(parts))
    return data


def load_spec(path: str | os.PathLike, overrides: Iterable[str] = ()) -> SpaceSpec:
    """Load, compose (``extends``), override (``--set``) and check a spec file; a mistake is one `UserError`
    line naming the file, the key path, the value and the fix."""
    label = str(path)
    data, origins, layers = _load_tree(Path(path), label, ())
    data = apply_overrides(data, overrides, label, origins)
    layers.append(f"{label} (--set)")
    study = data.get("study")
    if study is None or isinstance(study, dict) and study.get("name") is None:
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem).lstrip("._-")
        data["study"] = {**(study or {}), "name": name or "study"}
    return _build(data, label, origins, layers)


def spec_from_dict(data: dict[str, Any], source: str = "<dict>") -> SpaceSpec:
    """Rebuild a spec from `SpaceSpec.to_dict` output (e.g. a study's ``spec`` attribute)."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: {TOP}: {_show(data)}: a spec must be a mapping")
    return _build(dict(data), source, {(): source})


def _build(data: dict[str, Any], label: str, origins: dict[Path_, str], layers: list[str] = ()) -> SpaceSpec:
    data = {k: v for k, v in data.items() if v is not None or k not in SpaceSpec.model_fields}
    for section in SECTIONS_WITH_REMOVAL:
        if isinstance(data.get(section), dict):
            data[section] = {k: v for k, v in data[section].items() if v is not None}
    _later_layer_wins(data, origins, list(layers))
    try:
        spec = SpaceSpec.model_validate(data)
    except ValidationError as e:
        raise _from_pydantic(e, origins, label) from None
    try:
        spec, order, size = check(spec)
    except SpecIssue as issue:
        raise _line(_origin(origins, issue.path, label), key_path(issue.path), issue.value, issue.rule) from None
    spec._path, spec._order, spec._size = label, order, size
    return spec


def _later_layer_wins(data: dict[str, Any], origins: dict[Path_, str], layers: list[str]) -> None:
    """A field both fixed (base) and searched (space) by *different* layers (a parent spec, the child,
    --set) keeps the later layer's entry; within one file the overlap stays an error."""
    base, space = data.get("base"), data.get("space")
    if not (isinstance(base, dict) and isinstance(space, dict)):
        return
    rank = {name: i for i, name in enumerate(layers)}
    for k in [k for k in space if k in base]:
        from_base, from_space = origins.get(("base", k)), origins.get(("space", k))
        if from_base == from_space or from_base not in rank or from_space not in rank:
            continue
        if rank[from_space] > rank[from_base]:
            data["base"] = base = {f: v for f, v in base.items() if f != k}
        else:
            data["space"] = space = {f: v for f, v in space.items() if f != k}


def _origin(origins: dict[Path_, str], path: Path_, default: str) -> str:
    return next((origins[path[:n]] for n in range(len(path), -1, -1) if path[:n] in origins), default)


M = typing.TypeVar("M", bound=BaseModel)


def validate_model(cls: type[M], data: Any, label: str, at: Path_ = ()) -> M:
    """``cls.model_validate(data)`` (a recipe, a spec section at key path ``at``); a mistake is one
    `UserError` line ``<label>: <at.key.path>: <value>: <rule>``, like the spec's."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise _from_pydantic(e, {(): label}, label, cls, at) from None
    except SpecIssue as issue:  # a validator that knows a deeper key path than its field's
        raise _line(label, key_path(issue.path), issue.value, issue.rule) from None


_PATTERN_HINTS = {
    _NAME_RE: "use letters, digits and _ . - only, starting with a letter or digit",
    _DEVICE_RE: "must be auto, cpu, mps, cuda or cuda:N",
}


def _from_pydantic(e: ValidationError, origins: dict[Path_, str], label: str,
                   root: type[BaseModel] = SpaceSpec, at: Path_ = ()) -> UserError:
    err = e.errors(include_url=False)[0]
    loc = at + tuple(err["loc"])
    kind, msg = err["type"], err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = err.get("input", MISSING)
    where = _origin(origins, loc, label)
    if kind == "extra_forbidden":
        allowed = _keys_at(loc[len(at):-1], root)
        close = close_matches(str(loc[-1]), allowed, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(allowed)}"
        return _line(where, key_path(loc), str(loc[-1]), f"unknown key; {hint}")
    if kind == "missing":
        return _line(where, key_path(loc), MISSING, "required key; add it")
    if kind == "literal_error":
        expected = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
        msg = f"must be one of {expected}" + did_you_mean(value, expected, n=1)
    elif kind in ("model_type", "dict_type"):
        msg = f"must be a mapping of keys to values ({msg})"
    elif kind == "string_pattern_mismatch":
        msg = _PATTERN_HINTS.get(str(err.get("ctx", {}).get("pattern", "")), msg)
    return _line(where, key_path(loc), value, msg)


def _keys_at(loc: Path_, root: type[BaseModel]) -> list[str]:
    """The keys a model accepts at ``loc`` (for did-you-mean on unknown keys)."""
    tp: Any = root
    for part in loc + (None,):
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if part is None:
                return [f.alias or n for n, f in tp.model_fields.items()]
            tp = next((f.annotation for n, f in tp.model_fields.items() if (f.alias or n) == part), None)
        elif typing.get_origin(tp) in (list, tuple) and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif typing.get_origin(tp) is dict and part is not None:
            tp = typing.get_args(tp)[1]
        else:
            return []
    return []


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` and ``Optional[X]`` -> ``X``."""
    while typing.get_origin(tp) in (typing.Annotated, typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if typing.get_origin(tp) is not typing.Annotated and len(args) != 1:
            return tp
        tp = args[0]
    return tp
