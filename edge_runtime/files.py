"""Atomic file writes: a temporary file in the same directory, then ``os.replace``.

A reader (or a crash) sees the old file or the new one, never half of one; on failure the
temporary is removed and the old file is left as it was. The one copy for the project:
``train``, ``convert`` and ``benchmarks`` write their JSON reports and text through it too.
"""
from __future__ import annotations

import json
import os
import uuid

__all__ = ["write_bytes", "write_json", "write_text"]


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | os.PathLike, data) -> None:
    """Writes ``data`` (bytes, or a buffer such as ``cv2.imencode``'s array) to ``path``
    atomically."""
    path = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(path))
    # unique, hidden, beside the target (os.replace does not cross file systems)
    tmp = os.path.join(folder, f".{base}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: str | os.PathLike, data, indent: int | None = 2) -> None:
    """Writes ``data`` as JSON to ``path`` atomically (nothing is written if it cannot be
    serialised)."""
    write_text(path, json.dumps(data, indent=indent))
