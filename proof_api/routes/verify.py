"""The public verifier: the same checks a court runs offline (`evledger verify`)."""
from __future__ import annotations

import json
from json.decoder import WHITESPACE, scanstring

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from ..bodies import MAX_VERIFY_BODY_BYTES, parse_json
from ..deps import EvidenceRoute, Services, services
from ..errors import ApiError

router = APIRouter(route_class=EvidenceRoute)


class VerifyRequest(BaseModel):
    """A bundle and, optionally, the SM3 of the file; anything else is refused rather than
    silently left unchecked."""

    model_config = ConfigDict(extra="forbid")
    bundle: dict
    content_hash: str | None = Field(default=None, description="the SM3 hex of the file the court holds")
    verifier_keys: list[str] | None = Field(
        default=None, min_length=1, max_length=100,
        description="the verifier keys the ledger published (name+keyid+base64): the checkpoint must be signed by "
                    "one of them; without them the bundle's own key is used")
    contract: str | None = Field(
        default=None, pattern=r"^0x[0-9a-fA-F]{40}$",
        description="the anchor registry's address as the consortium published it: the bundle's anchor must be there")
    witness_keys: list[str] | None = Field(
        default=None, min_length=1, max_length=32,
        description="witnesses' cosigning keys (name+keyid+base64, type sm2-cosignature/v1): the checkpoint must carry "
                    "valid cosignatures by witness_threshold of them")
    witness_threshold: StrictInt | None = Field(
        default=None, ge=1, description="how many of witness_keys must have cosigned (default: all of them)")


def member_bytes(text: str, name: str) -> int:
    """The UTF-8 length of the text of the top-level member `name` of the JSON object `text`
    (read already, strictly, so valid and shallow): how large that value was as sent."""
    scan = json.JSONDecoder().scan_once
    skip = lambda at: WHITESPACE.match(text, at).end()  # noqa: E731
    at = skip(skip(0) + 1)  # past "{"
    while text[at] == '"':
        key, at = scanstring(text, at + 1)
        start = skip(skip(at) + 1)  # past ":"
        _, end = scan(text, start)
        if key == name:
            return len(text[start:end].encode())
        at = skip(end)
        at = skip(at + 1) if text[at] == "," else at
    raise KeyError(name)


@router.post("/v1/verify", tags=["proofs"], summary="Verify a proof bundle (and optionally the file's SM3): "
                                                "verdict 1 (in the anchored tree, unaltered) or 2",
          openapi_extra={"requestBody": {"required": True, "content": {
              "application/json": {"schema": VerifyRequest.model_json_schema()}}}})
async def verify(request: Request, svc: Services = Depends(services)):
    from evledger_verify.strict_json import StrictJSONError, loads_strict
    from evledger_verify.verify import (MAX_BUNDLE_BYTES, MAX_BUNDLE_DEPTH, load_trusted_keys, load_witness_policy,
                                        unreadable_report, verify_bundle)

    def read_and_verify(text: bytes):
        # The bundle as `evledger verify` reads it: JSON that strict reading refuses (a key
        # twice, a non-canonical number) is verdict 2 here as it is there, never a second
        # reading of the same text; text that is not JSON at all is a malformed request.
        try:
            given = loads_strict(text, max_bytes=MAX_VERIFY_BODY_BYTES, max_depth=MAX_BUNDLE_DEPTH + 1)
        except StrictJSONError as exc:
            parse_json(text)  # BodyError malformed_json when no JSON parser reads it either
            return unreadable_report(exc)
        try:
            body = VerifyRequest.model_validate(given)
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        size = member_bytes(text.decode(), "bundle")  # the bundle's own text, as a bundle file would hold it
        if size > MAX_BUNDLE_BYTES:
            return unreadable_report(StrictJSONError(f"the text is {size} bytes, over the limit of {MAX_BUNDLE_BYTES}"))
        trusted_keys = None
        if body.verifier_keys is not None:
            try:
                trusted_keys = load_trusted_keys(body.verifier_keys, [], named="verifier_keys")
            except ValueError as exc:
                raise ApiError(422, "invalid_request", str(exc), "verifier_keys") from None
        try:
            policy = load_witness_policy(body.witness_keys or [], body.witness_threshold, named="witness_keys",
                                         threshold_named="witness_threshold")
        except ValueError as exc:
            field = "witness_keys" if str(exc).startswith("witness_keys") else "witness_threshold"
            raise ApiError(422, "invalid_request", str(exc), field) from None
        # Never a chain URL from the client: the server would fetch whatever it was told.
        return verify_bundle(given["bundle"], None, body.content_hash, None, trusted_keys, body.contract, policy)

    text = await request.body()
    # The body is in (so a slow client holds no slot) but not yet parsed: a refused request
    # costs no parsing, and the reading (pure Python, up to a second for 1 MiB) runs inside
    # the slot, off the event loop.
    release = svc.in_flight.admit_verification()
    try:
        report = await run_in_threadpool(read_and_verify, text)
    finally:
        release()
    return report.as_dict()
