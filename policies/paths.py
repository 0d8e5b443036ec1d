"""Output paths checked before any work starts.

    check_out_file("--out", "runs/x.jsonl")     # ValueError naming the flag and the fix
    check_out_dir("--out", "reports/x")
    write_json("runs/x/summary.json", summary)  # whole or not at all

Every command checks where it will write before it loads a model or starts an engine,
so a bad path costs a second, not a run. Nothing is created by the checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path, obj, *, default=None) -> None:
    """Write ``obj`` as indented JSON to ``path`` through ``path.tmp`` renamed into place,
    so a reader, or a run killed mid-write, sees the old file or the new one, never half."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=default) + "\n", encoding="utf-8")
    os.replace(tmp, p)


def check_out_file(flag: str, path) -> None:
    """An output file that can be written: not a directory, and in a folder that exists
    or can be created, where files can be made. Nothing is created."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{flag} {p} is a directory; pass a file path, e.g. {p / 'run.jsonl'}")
    if p.exists():
        if not p.is_file():
            raise ValueError(f"{flag} {p} is not a regular file; pass a file path")
        try:
            open(p, "ab").close()
        except OSError as e:
            raise ValueError(f"{flag} {p}: cannot write to it ({e.strerror}); pass another path") from None
        return
    _check_creatable(flag, p)


def check_out_dir(flag: str, path) -> None:
    """An output folder that exists or can be created, where files can be made."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{flag} {p} is a file, not a folder; pass a folder path")
    _check_creatable(flag, p / "x")


def _check_creatable(flag: str, p: Path) -> None:
    import tempfile

    folder = p.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{flag} {p.parent if flag.endswith('dir') else p}: {folder} is a file, not a folder; "
                         "pass a path in a writable folder")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise ValueError(f"{flag} {p.parent if flag.endswith('dir') else p}: cannot write in {folder} "
                         f"({e.strerror}); pass a path in a writable folder") from None
