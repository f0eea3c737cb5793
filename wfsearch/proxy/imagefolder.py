"""Image folders read safely: class sets checked up front, links followed at most once, bad files skipped.

Policy (as the README's data section): train/ and val/ must hold the same class folders (or every chosen
class). The root, split and class folders may be links. Inside a class folder a link is followed only when
its target stays in that folder, or lies under the root outside every split's class folders (no image gets
another label or is shared between splits); links out of the root only with ``follow_links``. No folder or
file is read twice, so loops end; dangling, looping and refused links are skipped and counted. Hidden
files are ignored; undecodable files are skipped with one warning per split. More than `MAX_BAD_FRACTION`
of a split unreadable, or a class left without images, stops before training with one line.
"""
from __future__ import annotations

import logging
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from wfsearch.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
MAX_BAD_FRACTION = 0.1  # more unreadable files than this in a split: stop (a wrong or damaged copy)
SHOW_NAMES = 3  # names listed in a warning or an error

ErrorFactory = Callable[[str, Any, str], UserError]  # (key, value, rule) -> the one-line error


@dataclass
class SplitScan:
    """The image files of one split: ``(path, class index)`` pairs, and what was left out, with why."""

    folder: Path
    samples: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def class_names(folder: Path) -> list[str]:
    """Sorted names of the class sub-folders of ``folder`` (links to folders count; hidden ones do not)."""
    names = []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir():  # follows a link once; a loop or a dangling link is not a class folder
                    names.append(e.name)
            except OSError:
                continue
    return sorted(names)


def check_class_sets(train_dir: Path, val_dir: Path, train_names: Sequence[str], val_names: Sequence[str],
                     chosen: Sequence[str], explicit: bool, error: ErrorFactory, key: str, value: Any) -> None:
    """Train and val must agree on the chosen classes (and, unless chosen explicitly, on all of them)."""
    val_set = set(val_names)
    if explicit:  # only the chosen classes matter
        only_train, only_val = [c for c in chosen if c not in val_set], []
    else:
        only_train, only_val = sorted(set(train_names) - val_set), sorted(val_set - set(train_names))
    if not only_train and not only_val:
        return
    parts = [f"only in {d}: {_names(c)}" for d, c in ((train_dir, only_train), (val_dir, only_val)) if c]
    raise error(key, value, f"train and val have different class folders ({'; '.join(parts)}); give both "
                            "the same class folders, or choose classes both have with proxy.dataset.classes")


def _names(names: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return f"[{shown}, ...] ({len(names)})" if len(names) > n else f"[{shown}]"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def scan_splits(root: Path, splits: dict[str, Path], classes: Sequence[str], follow_links: bool = False,
                suffixes: Iterable[str] = IMAGE_SUFFIXES) -> dict[str, SplitScan]:
    """The image files of ``classes`` (label = position) in every split folder, in sorted order (link rules:
    the module docstring)."""
    suffixes = tuple(s.lower() for s in suffixes)
    root_real = os.path.realpath(root)
    class_real = {(split, c): os.path.realpath(folder / c) for split, folder in splits.items() for c in classes}
    all_class_dirs = list(class_real.values())
    out = {}
    for split, folder in splits.items():
        scan = SplitScan(folder)
        seen_files: set[tuple[int, int]] = set()
        seen_dirs: set[tuple[int, int]] = set()
        for label, c in enumerate(classes):
            own = class_real[(split, c)]
            try:
                st = os.stat(folder / c)
            except OSError as e:
                scan.skipped.append((str(folder / c), f"cannot open ({e.strerror})"))
                continue
            if (st.st_dev, st.st_ino) in seen_dirs:  # two class names, one folder: images would get two labels
                scan.skipped.append((str(folder / c), "the same folder as another class"))
                continue
            seen_dirs.add((st.st_dev, st.st_ino))
            stack = [str(folder / c)]
            while stack:
                d = stack.pop()
                try:
                    with os.scandir(d) as it:
                        entries = sorted(it, key=lambda e: e.name)
                except OSError as e:
                    scan.skipped.append((d, f"cannot list ({e.strerror})"))
                    continue
                subdirs = []
                for e in entries:
                    if e.name.startswith("."):
                        continue
                    if e.is_symlink():
                        why = _refuse_link(e.path, own, all_class_dirs, root_real, follow_links)
                        if why:
                            scan.skipped.append((e.path, why))
                            continue
                    try:
                        st = os.stat(e.path)
                    except OSError as err:  # dangling link, link loop, permission
                        scan.skipped.append((e.path, f"cannot open ({err.strerror})"))
                        continue
                    ident = (st.st_dev, st.st_ino)
                    if stat.S_ISDIR(st.st_mode):
                        if ident in seen_dirs:
                            scan.skipped.append((e.path, "a folder already read (link loop)"))
                        else:
                            seen_dirs.add(ident)
                            subdirs.append(e.path)
                    elif stat.S_ISREG(st.st_mode) and e.name.lower().endswith(suffixes):
                        if ident in seen_files:
                            scan.skipped.append((e.path, "a file already read (link)"))
                        else:
                            seen_files.add(ident)
                            scan.samples.append((e.path, label))
                stack.extend(reversed(subdirs))
        out[split] = scan
    return out


def _refuse_link(path: str, own: str, class_dirs: list[str], root: str, follow_links: bool) -> str | None:
    """Why the link at ``path`` (inside the class folder ``own``) is not followed, or None."""
    try:
        target = os.path.realpath(path, strict=True)
    except OSError as e:
        return f"link {'loop' if 'loop' in str(e).lower() or e.errno == 40 else 'target missing'}"
    if _inside(own, target) and target != own:
        return f"link loop (to {target}, which holds this folder)"
    if _inside(target, own):
        return None
    if any(_inside(target, d) or _inside(d, target) for d in class_dirs):
        return f"link into another class or split ({target})"
    if _inside(target, root) or follow_links:
        return None
    return f"link out of the dataset root ({target}); set proxy.dataset.follow_links: true to follow it"


def quiet_pillow() -> None:
    """Silence Pillow's warnings about odd files: wfsearch reports undecodable files itself."""
    warnings.filterwarnings("ignore", module=r"PIL\.")


def decode(path: str, size: int) -> np.ndarray:
    """One image file -> ``(size, size, 3)`` uint8: shorter side resized to ``size``, centre crop."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when possible
        im = im.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)
        left, top = (nw - size) // 2, (nh - size) // 2
        return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def why_unreadable(path: str, e: Exception) -> str:
    """A short reason for a file that did not decode."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(e, Image.DecompressionBombError):
        return f"over Pillow's decompression-bomb limit of {2 * Image.MAX_IMAGE_PIXELS} pixels"
    if isinstance(e, UnidentifiedImageError):
        try:
            empty = os.path.getsize(path) == 0
        except OSError:
            empty = False
        return "empty file" if empty else "not an image"
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def decode_all(paths: Sequence[str], size: int, workers: int) -> tuple[list[np.ndarray | None], list[str | None]]:
    """Decode ``paths`` on ``workers`` threads; a file that fails gives None and its reason."""
    from concurrent.futures import ThreadPoolExecutor

    quiet_pillow()

    def one(p: str) -> tuple[np.ndarray | None, str | None]:
        try:
            return decode(p, size), None
        except Exception as e:  # any decoding failure makes the file unreadable, nothing more
            return None, why_unreadable(p, e)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(one, paths, chunksize=16))
    return [a for a, _ in results], [w for _, w in results]


def describe_skipped(skipped: Sequence[tuple[str, str]], base: Path, n: int = SHOW_NAMES) -> str:
    """``'a/1.jpg' (image file is truncated), ...`` for the first ``n`` entries, paths relative to ``base``."""
    def rel(p: str) -> str:
        try:
            return os.path.relpath(p, base)
        except ValueError:
            return p
    shown = ", ".join(f"{rel(p)!r} ({why})" for p, why in skipped[:n])
    return shown + (f" and {len(skipped) - n} more" if len(skipped) > n else "")


def report_skipped(split: str, scan: SplitScan, unreadable: Sequence[tuple[str, str]], total: int,
                   root: Path, error: ErrorFactory, key: str, value: Any) -> None:
    """One warning for what a split left out; one error when too much of it is unreadable."""
    if unreadable and len(unreadable) > MAX_BAD_FRACTION * total:
        raise error(key, value, f"{len(unreadable)} of {total} {split} images cannot be read (more than "
                                f"{MAX_BAD_FRACTION:.0%}): {describe_skipped(unreadable, scan.folder)}; "
                                "fix or remove them, or use an intact copy of the data")
    left_out = list(scan.skipped) + list(unreadable)
    if left_out:
        log.warning("%s: skipped %d entr%s that cannot be used: %s", scan.folder, len(left_out),
                    "y" if len(left_out) == 1 else "ies", describe_skipped(left_out, scan.folder))
