"""The synchronous client: `Client(url, ledger, api_key)`, one call at a time."""
from __future__ import annotations

import httpx
from tenacity import Retrying

from . import core
from .core import BATCH_BYTES, BATCH_RECORDS, Call, Receipt, SubmitResult
from .errors import EvledgerError


class Client:
    """A producer's or an auditor's connection to one evidence-ledger service.

    `url`, `ledger` and `api_key` default to EVLEDGER_URL, EVLEDGER_LEDGER and EVLEDGER_API_KEY;
    `ca_file` (EVLEDGER_CA_FILE) trusts a server's own certificate. Every call is tried again on
    a connection error, 429 (after its Retry-After), 502, 503 and 504 for up to `retry_for`
    seconds; that is safe because every record is sent with an evidence id. Errors are the
    classes of `evledger_client.errors`."""

    def __init__(self, url: str | None = None, ledger: str | None = None, api_key: str | None = None, *,
                 ca_file: str | None = None, verify: bool = True, timeout: float = 60.0, retry_for: float = 300.0):
        self.settings = core.settings(url, ledger, api_key, ca_file=ca_file, verify=verify, timeout=timeout,
                                      retry_for=retry_for)
        self._http = httpx.Client(base_url=self.settings.url, verify=self.settings.verify,
                                  timeout=self.settings.timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def record(self, ledger: str | None = None, **fields) -> Receipt:
        """Submit one record (its fields as keywords); its receipt once durable. Raises
        InvalidRecord when it is refused."""
        call, prepared = core.record_call(self.settings, ledger, fields)
        return core.matching(Receipt.from_answer(self.send(call)), prepared.evidence_id)

    def submit(self, records, *, ledger: str | None = None, batch_records: int = BATCH_RECORDS,
               batch_bytes: int = BATCH_BYTES) -> SubmitResult:
        """Submit records in batches under the server's limits; one Receipt or InvalidRecord
        per record, in order. A record without an evidence_id is sent with a derived one
        (core.derive_evidence_id), which its receipt returns. An error that stops the call
        carries what was recorded before it as `partial`."""
        prepared, plan, probe = core.plan(records, batch_records, batch_bytes)
        sent = []
        try:
            if probe:
                self.send(core.probe_call(self.settings, ledger))
            for batch in plan:
                answer = self.send(core.batch_call(self.settings, ledger, batch))
                sent.append((batch, core.batch_results(answer, len(batch.indexes))))
        except EvledgerError as exc:
            exc.partial = core.merge(prepared, sent)
            raise
        return core.merge(prepared, sent)

    def submit_file(self, path, business_type: str, *, occurred_at: str | None = None,
                    evidence_id: str | None = None, business_id: str | None = None,
                    ledger: str | None = None) -> Receipt:
        """Upload a file, streamed; the service records its SM3, which is checked against the
        SM3 computed here as it was read. occurred_at defaults to the file's modification time
        (UTC). A file over 1 MiB is preceded by an empty upload with the same fields, which the
        service refuses (`empty_file`) after checking the key, the ledger and the fields."""
        call, body = core.file_call(self.settings, ledger, path, business_type, occurred_at, evidence_id, business_id)
        if body.size > core.PROBE_OVER:
            core.check_probe(self.send(core.fields_call(self.settings, ledger, call.params)))
        return core.file_receipt(self.send(call), body)

    def find(self, *, seq: int | None = None, evidence_id: str | None = None, content_hash: str | None = None,
             business_id: str | None = None, ledger: str | None = None) -> list[dict]:
        """The records named (an auditor sees them whole, a verifier their status)."""
        call = core.find_call(self.settings, ledger, core.selector(seq, evidence_id, content_hash, None, business_id))
        return core.found(call, self.send(call))

    def proof(self, *, seq: int | None = None, evidence_id: str | None = None, content_hash: str | None = None,
              file=None, checkpoint: int | None = None, require_anchor: bool = True,
              ledger: str | None = None) -> dict:
        """The record's proof bundle (evledger-proof/2); a file names the record by its SM3."""
        named = core.selector(seq, evidence_id, content_hash, file)
        return core.bundle(self.send(core.proof_call(self.settings, ledger, named, checkpoint, require_anchor)))

    def certificate(self, *, seq: int | None = None, evidence_id: str | None = None,
                    content_hash: str | None = None, file=None, ledger: str | None = None) -> str:
        """The record's data preservation certificate (HTML, its bundle embedded)."""
        named = core.selector(seq, evidence_id, content_hash, file)
        return core.certificate_text(self.send(core.proof_call(self.settings, ledger, named, what="certificate")))

    def checkpoint(self, size: int | None = None, *, ledger: str | None = None) -> dict:
        """The latest checkpoint, or the one of `size`."""
        return core.answer_object(self.send(core.checkpoint_call(self.settings, ledger, size)))

    def send(self, call: Call, on_retry=None) -> bytes:
        """The answer's body to `call`, tried again while core.retryable says so; `on_retry(state)`
        is called before each retry (tenacity's before_sleep)."""
        for attempt in Retrying(**core.retry_policy(self.settings, on_retry)):
            with attempt:
                return self._once(call)
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _once(self, call: Call) -> bytes:
        try:
            answer = self._http.request(**core.request_of(self.settings, call, streaming=False))
        except httpx.RequestError as exc:
            raise core.request_error(exc, self.settings.url) from exc
        core.check_answer(answer.status_code, answer.content, answer.headers.get("retry-after"), call.ok)
        return answer.content
