"""Anchoring checkpoints to a consortium chain: the registry contract, chain backends and the
anchor worker."""
