"""Anchoring checkpoints to a consortium chain (issue 4)."""
