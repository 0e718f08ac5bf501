"""API keys and IP rules: who may do what on which ledger.

A key is `evk_<key id>_<secret>`; only SHA-256 of the whole key is stored (the secret is 32
random bytes, so a fast hash is enough), in <data dir>/access.json (0600, replaced atomically).
Each key belongs to one ledger, or to "*" for the service admin who creates ledgers.

Roles: producer (submit), auditor (read records, proofs, decrypted sealed fields, listings),
verifier (proofs and checkpoints of records it names by evidence id or content hash; no
listing), admin (keys, IP rules, signing-key rotation, anchoring now).
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import ipaddress
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from ingest.ledger import LedgerError

ROLES = ("producer", "auditor", "verifier", "admin")
ALL_LEDGERS = "*"


@dataclass(frozen=True)
class Principal:
    key_id: str
    ledger: str  # a ledger id, or "*"
    role: str

    def may_use(self, ledger_id: str) -> bool:
        return self.ledger in (ALL_LEDGERS, ledger_id)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AccessStore:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._data = {"keys": {}, "ip_rules": {}}
        if self.path.exists():
            self._data = orjson.loads(self.path.read_bytes())
        self._networks: dict[str, tuple[list, list]] = {}
        self._compile()

    def _save(self, data: dict) -> None:
        """Make `data` the store, on disk first: a write that fails (a full disk) leaves both
        the file and the keys in memory as they were, never a key that works only until a
        restart."""
        tmp = self.path.with_suffix(".tmp")
        text = memoryview(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                while text:  # os.write may write less than asked (a nearly full disk)
                    text = text[os.write(fd, text):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise LedgerError("storage_full", f"the access store {self.path} could not be written "
                                  f"({exc.strerror}): nothing was changed; retry once there is room") from None
            raise
        self._data = data
        self._compile()

    def _compile(self) -> None:
        self._networks = {ledger: ([ipaddress.ip_network(n) for n in rules.get("allow", [])],
                                   [ipaddress.ip_network(n) for n in rules.get("deny", [])])
                          for ledger, rules in self._data["ip_rules"].items()}

    # -- keys -------------------------------------------------------------------------------

    def create_key(self, ledger: str, role: str) -> tuple[str, str]:
        """A new key for `ledger` with `role`: (key id, the key). The key is shown only now."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        key_id = secrets.token_hex(6)
        key = f"evk_{key_id}_{secrets.token_urlsafe(32)}"
        with self._lock:
            entry = {"hash": _digest(key), "ledger": ledger, "role": role, "created": int(time.time())}
            self._save({**self._data, "keys": {**self._data["keys"], key_id: entry}})
        return key_id, key

    def revoke(self, key_id: str) -> bool:
        with self._lock:
            if key_id not in self._data["keys"]:
                return False
            self._save({**self._data, "keys": {k: v for k, v in self._data["keys"].items() if k != key_id}})
            return True

    def keys(self, ledger: str | None = None) -> list[dict]:
        return [{"key_id": k, "ledger": v["ledger"], "role": v["role"], "created": v["created"]}
                for k, v in self._data["keys"].items() if ledger is None or v["ledger"] == ledger]

    def has_service_admin(self) -> bool:
        return any(v["ledger"] == ALL_LEDGERS and v["role"] == "admin" for v in self._data["keys"].values())

    def authenticate(self, key: str | None) -> Principal | None:
        if not key or not key.startswith("evk_") or key.count("_") < 2:
            return None
        key_id = key.split("_", 2)[1]
        entry = self._data["keys"].get(key_id)
        if entry is None or not hmac.compare_digest(entry["hash"], _digest(key)):
            return None
        return Principal(key_id, entry["ledger"], entry["role"])

    # -- IP rules ---------------------------------------------------------------------------

    def set_ip_rules(self, ledger: str, allow: list[str], deny: list[str]) -> dict:
        """Allow/deny lists of addresses or CIDR networks for a ledger; an empty allow list
        allows every address not denied."""
        for network in [*allow, *deny]:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an IP address or network") from None
        rules = {"allow": [str(ipaddress.ip_network(n, strict=False)) for n in allow],
                 "deny": [str(ipaddress.ip_network(n, strict=False)) for n in deny]}
        with self._lock:
            self._save({**self._data, "ip_rules": {**self._data["ip_rules"], ledger: rules}})
        return rules

    def ip_rules(self, ledger: str) -> dict:
        return self._data["ip_rules"].get(ledger, {"allow": [], "deny": []})

    def ip_allowed(self, ledger: str, address: str | None) -> bool:
        rules = self._networks.get(ledger)
        if rules is None:
            return True
        allow, deny = rules
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return not allow  # an unknown peer passes only where nothing is restricted to a list
        if any(ip in n for n in deny):
            return False
        return not allow or any(ip in n for n in allow)
