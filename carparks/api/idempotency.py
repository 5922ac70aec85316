"""``Idempotency-Key`` on creating POSTs: a replay returns the first response and creates nothing.

The key's row is inserted in the same transaction as the thing the request creates. A second
request with the same key blocks on the unique index until the first commits, then reads and
returns the stored response; if the first failed, nothing was stored and the key is free again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from django.db import IntegrityError, transaction
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from carparks.models import ApiClient, IdempotencyRecord

HEADER = "Idempotency-Key"


def _request_hash(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotent(request: Request, create: Callable[[], Response]) -> Response:
    key = request.headers.get(HEADER, "").strip()
    client = request.auth
    if not key or not isinstance(client, ApiClient):
        return create()
    if len(key) > 255:
        return Response({HEADER: ["Use at most 255 characters."]}, status=status.HTTP_400_BAD_REQUEST)
    digest = _request_hash(request)
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    client=client, key=key, method=request.method, path=request.path[:500], request_hash=digest
                )
        except IntegrityError:
            record = IdempotencyRecord.objects.get(client=client, key=key)
            if record.request_hash != digest:
                return Response(
                    {HEADER: ["This key was already used for a different request."]},
                    status=status.HTTP_422_UNPROCESSABLE_ENTITY,
                )
            return Response(
                record.response_body, status=record.response_status, headers={"Idempotent-Replayed": "true"}
            )
        response = create()
        if response.status_code >= 400:
            transaction.set_rollback(True)  # a failed request does not use up the key
            return response
        record.response_status = response.status_code
        record.response_body = json.loads(json.dumps(response.data, cls=JSONEncoder))
        record.save(update_fields=["response_status", "response_body"])
    return response
