"""What every benchmark report states: the machine, the versions, the commit; and where each
module writes its result."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return 0.0


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=5).stdout
        return out.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict:
    import numba
    import numpy

    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "openssl": openssl,
        "commit": _commit(),
    }


def machine_line(info: dict) -> str:
    return (f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; Python {info['python']}, "
            f"numba {info['numba']}, {info['openssl']}; commit {info['commit']}; {info['date_utc']}")


def write_result(out: str | os.PathLike, name: str, result: dict, md: str | None = None) -> Path:
    """Write <out>/<name>-<UTC stamp>.json (the raw result, what bench.suite and capacity read)
    and, given the report, the .md beside it; return the .json's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(result, indent=2))
    if md is not None:
        path.with_suffix(".md").write_text(md)
    return path


def write_and_print_result(out: str | os.PathLike, name: str, result: dict, md: str) -> Path:
    """write_result, then the report on stdout after a blank line; the .json's path."""
    written = write_result(out, name, result, md)
    print()
    print(md)
    return written
