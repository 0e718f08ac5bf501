"""Writing a vector folder: one JSON file per case, stale files removed, stable formatting."""
from __future__ import annotations

import json
from pathlib import Path


def case_files(kind: str, case_dir: str, happy: dict, corrupted: dict[str, dict]) -> dict[str, dict]:
    """{relative path: case} for one happy-path case and its named corruptions."""
    files = {f"{kind}/{case_dir}/happy-path.json": happy}
    for stem, case in sorted(corrupted.items()):
        files[f"{kind}/{case_dir}/{stem}.json"] = case
    return files


def dumps(obj) -> str:
    return json.dumps(obj, indent=2) + "\n"


def write_folder(folder: Path, files: dict[str, dict]) -> None:
    """Replace every .json file under `folder` by `files` ({relative path: object})."""
    for old in folder.rglob("*.json"):
        old.unlink()
    for rel, obj in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps(obj))
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not any(d.iterdir()):
            d.rmdir()
