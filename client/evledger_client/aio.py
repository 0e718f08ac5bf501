"""The asynchronous client: `AsyncClient`, the same calls as `Client`, awaited; `submit`
keeps several batches in flight."""
from __future__ import annotations

import asyncio

import httpx
from tenacity import AsyncRetrying

from . import core
from .core import BATCH_BYTES, BATCH_RECORDS, Batch, Call, Receipt, SubmitResult
from .errors import EvledgerError

CONCURRENCY = 4  # batches in flight: enough to keep a 2-core server's group commit full


class AsyncClient:
    """As `Client` (same arguments, environment, retries and errors), for asyncio."""

    def __init__(self, url: str | None = None, ledger: str | None = None, api_key: str | None = None, *,
                 ca_file: str | None = None, verify: bool = True, timeout: float = 60.0, retry_for: float = 300.0,
                 concurrency: int = CONCURRENCY):
        self.settings = core.settings(url, ledger, api_key, ca_file=ca_file, verify=verify, timeout=timeout,
                                      retry_for=retry_for)
        if concurrency < 1:
            raise ValueError(f"concurrency is at least 1, not {concurrency}")
        self.concurrency = concurrency
        limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
        self._http = httpx.AsyncClient(base_url=self.settings.url, verify=self.settings.verify,
                                       timeout=self.settings.timeout, limits=limits)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def record(self, ledger: str | None = None, **fields) -> Receipt:
        call, prepared = core.record_call(self.settings, ledger, fields)
        return core.matching(Receipt.from_answer(await self.send(call)), prepared.evidence_id)

    async def submit(self, records, *, ledger: str | None = None, batch_records: int = BATCH_RECORDS,
                     batch_bytes: int = BATCH_BYTES) -> SubmitResult:
        """As Client.submit, with up to `concurrency` batches in flight."""
        prepared, plan, probe = core.plan(records, batch_records, batch_bytes)
        room = asyncio.Semaphore(self.concurrency)
        sent: list = []

        async def one(batch: Batch) -> None:
            async with room:
                sent.append((batch, await self.submit_batch(batch, ledger)))

        try:
            if probe:
                await self.send(core.probe_call(self.settings, ledger))
            tasks = [asyncio.ensure_future(one(batch)) for batch in plan]
            try:
                await asyncio.gather(*tasks)
            finally:  # the first error stops the rest, as in Client.submit
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        except EvledgerError as exc:
            exc.partial = core.merge(prepared, sent)
            raise
        return core.merge(prepared, sent)

    async def submit_batch(self, batch: Batch, ledger: str | None = None, on_retry=None) -> list[dict]:
        """One batch's results as the server gives them: a receipt or {"error"} per record.
        `on_retry(state)` is called before each retry (tenacity's before_sleep)."""
        answer = await self.send(core.batch_call(self.settings, ledger, batch), on_retry)
        return core.batch_results(answer, len(batch.indexes))

    async def submit_file(self, path, business_type: str, *, occurred_at: str | None = None,
                          evidence_id: str | None = None, business_id: str | None = None,
                          ledger: str | None = None) -> Receipt:
        call, body = await asyncio.to_thread(core.file_call, self.settings, ledger, path, business_type, occurred_at,
                                             evidence_id, business_id)
        if body.size > core.PROBE_OVER:
            core.check_probe(await self.send(core.fields_call(self.settings, ledger, call.params)))
        return core.file_receipt(await self.send(call), body)

    async def find(self, *, seq: int | None = None, evidence_id: str | None = None, content_hash: str | None = None,
                   business_id: str | None = None, ledger: str | None = None) -> list[dict]:
        call = core.find_call(self.settings, ledger, core.selector(seq, evidence_id, content_hash, None, business_id))
        return core.found(call, await self.send(call))

    async def proof(self, *, seq: int | None = None, evidence_id: str | None = None,
                    content_hash: str | None = None, file=None, checkpoint: int | None = None,
                    require_anchor: bool = True, ledger: str | None = None) -> dict:
        named = await asyncio.to_thread(core.selector, seq, evidence_id, content_hash, file)
        return core.bundle(await self.send(core.proof_call(self.settings, ledger, named, checkpoint, require_anchor)))

    async def certificate(self, *, seq: int | None = None, evidence_id: str | None = None,
                          content_hash: str | None = None, file=None, ledger: str | None = None) -> str:
        named = await asyncio.to_thread(core.selector, seq, evidence_id, content_hash, file)
        return core.certificate_text(await self.send(core.proof_call(self.settings, ledger, named, what="certificate")))

    async def checkpoint(self, size: int | None = None, *, ledger: str | None = None) -> dict:
        return core.answer_object(await self.send(core.checkpoint_call(self.settings, ledger, size)))

    async def send(self, call: Call, on_retry=None) -> bytes:
        async for attempt in AsyncRetrying(**core.retry_policy(self.settings, on_retry)):
            with attempt:
                return await self._once(call)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _once(self, call: Call) -> bytes:
        try:
            answer = await self._http.request(**core.request_of(self.settings, call, streaming=True))
        except httpx.RequestError as exc:
            raise core.request_error(exc, self.settings.url) from exc
        core.check_answer(answer.status_code, answer.content, answer.headers.get("retry-after"), call.ok)
        return answer.content
