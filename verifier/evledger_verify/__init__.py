"""The offline verifier of proof bundles: what a court runs to reach verdict ① (in the
anchored tree, unaltered) or ② without trusting this service (docs/proof-bundle.md).

Its own distribution, `evledger-verify` (verifier/pyproject.toml), with its own command
`evledger-verify`: the standard library, gmssl for SM2 and pycryptodome for keccak, nothing
else; the chain is read over plain JSON-RPC. The ledger builds on the same definitions (the
proof checks, the checkpoint note, the leaf decoder, the ledger key, getAnchor): one of each.

    verify.py       the checks, the report, reading a bundle's text
    cli.py          the `evledger-verify` command (`evledger verify` runs the same `run`)
    proof.py        RFC 9162 inclusion and consistency proofs
    note.py         the SM2-signed checkpoint note, read and checked
    sm3.py          the pure-Python SM3 reference (OpenSSL's is used where it has one)
    leaf.py         the version-1 leaf decoder (canonical form checked)
    chain.py        the ledger key, getAnchor, the Anchored event, a JSON-RPC client
    strict_json.py  one strict reading of a JSON text
"""
