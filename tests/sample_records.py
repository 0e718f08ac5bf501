"""Small valid evidence records for tests: `rec(i)` is record i, with fields overridden."""
import hashlib


def chash(i) -> str:
    return hashlib.sha256(f"content-{i}".encode()).hexdigest()


def rec(i, occurred_at: str = "2024-05-01T09:30:00Z", **fields) -> dict:
    out = {"content_hash": chash(i), "business_type": "contract.signed", "occurred_at": occurred_at}
    out.update(fields)
    return out
