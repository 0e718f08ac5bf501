"""Witnesses (c2sp.org/tlog-witness with SM2 cosignatures, docs/witness.md): the service an
independent party runs to cosign a ledger's checkpoints (server.py, its state in state.py), and
the ledger's side that asks its witnesses after each checkpoint (collector.py)."""
