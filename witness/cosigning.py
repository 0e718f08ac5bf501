"""A witness's identity (its name and SM2 cosigning key) and the CheckpointCosigned event a
ledger logs for each cosignature it collects."""
from __future__ import annotations

import time
from dataclasses import dataclass

from evledger_verify.cosignature import cosigner_verifier_key, parse_cosigner_key, verify_cosignature
from evledger_verify.note import CheckpointError, parse_note
from ingest import events as ev
from ingest.leaf import format_received_at
from merkle.checkpoint import SM2PrivateKey, cosign_checkpoint


@dataclass(frozen=True)
class WitnessIdentity:
    name: str
    key: SM2PrivateKey

    @property
    def verifier_key(self) -> str:
        return cosigner_verifier_key(self.name, self.key.public_key)

    def cosign(self, body: str, timestamp: int | None = None) -> str:
        """The cosignature line on a checkpoint body, timestamped now unless told."""
        return cosign_checkpoint(body, self.name, self.key, int(time.time()) if timestamp is None else timestamp)


def cosignature_payload(checkpoint: dict, witness_key: str, line: str) -> dict:
    """The CheckpointCosigned payload for a witness's cosignature line on a ledger checkpoint
    (a dict with size, root and note); CheckpointError unless the line is that witness's valid
    cosignature of that checkpoint's body."""
    name, kid, _ = parse_cosigner_key(witness_key)
    body, _ = parse_note(checkpoint["note"])
    _, signatures = parse_note(body + "\n" + line)
    if len(signatures) != 1 or signatures[0][:2] != (name, kid):
        raise CheckpointError(f"the line is not a signature by witness {name} ({kid.hex()})")
    timestamp = verify_cosignature(body, witness_key, signatures[0][2])
    return {"size": checkpoint["size"], "root": checkpoint["root"], "witness": name, "key_id": kid.hex(),
            "witness_key": witness_key, "timestamp": timestamp, "line": line,
            "cosigned_at": format_received_at(time.time_ns() // 1000)}


def log_cosignature(ledger, payload: dict) -> None:
    ledger.append_events([ev.json_event(ev.CHECKPOINT_COSIGNED, payload)])
