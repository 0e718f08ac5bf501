"""The evidence-ledger client, for producers and auditors: `pip install ./client` gives this
package (httpx, orjson, tenacity, click, tqdm) and the `evledger-push` command, and nothing of
the service.

    from evledger_client import Client
    with Client("https://ledger.example", "brokerage-sh", api_key) as ledger:
        results = ledger.submit(records)          # a Receipt or an InvalidRecord per record
        bundle = ledger.proof(evidence_id="ACC-2026-000123-video")

Modules: client (Client, synchronous), aio (AsyncClient), core (what both share, no I/O),
errors (the typed errors), push (`evledger push`), cli (its command line). docs/producers.md.
"""
from .aio import AsyncClient
from .client import Client
from .core import Receipt, SubmitResult, derive_evidence_id
from .errors import (BadAnswer, BadRequest, Conflict, ConnectionFailed, EvledgerError, Forbidden, InvalidRecord, NotFound,
                     PayloadTooLarge, ServerError, TooManyRequests, Unauthorized, Unavailable)

__all__ = ["AsyncClient", "BadAnswer", "BadRequest", "Client", "Conflict", "ConnectionFailed", "EvledgerError", "Forbidden",
           "InvalidRecord", "NotFound", "PayloadTooLarge", "Receipt", "ServerError", "SubmitResult", "TooManyRequests",
           "Unauthorized", "Unavailable", "derive_evidence_id"]
