"""The HTTP service, proof bundles, the offline verifier, and the `evledger` command."""
