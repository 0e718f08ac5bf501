"""`python -m proof_api.cli`: the `evledger` command without its console script."""
import sys

from . import main

sys.exit(main())
