"""Making a write survive a power loss: a new or renamed directory entry is durable only once
its directory is fsynced."""
from __future__ import annotations

import os


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
