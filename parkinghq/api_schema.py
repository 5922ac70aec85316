"""The OpenAPI schema at /api/schema/, generated once per process and served from memory.

drf-spectacular's generator is not thread-safe on its first run: it loads its extension classes and
fills shared registries while other threads read them, so concurrent first requests under a threaded
server (gunicorn --threads) answered 500. The schema changes only with a deploy, so each process
generates it once, under a lock, and every later request gets the same document.
"""

from __future__ import annotations

import threading
from typing import Any

from django.utils import translation
from drf_spectacular.views import SpectacularAPIView
from rest_framework.request import Request
from rest_framework.response import Response

_LOCK = threading.Lock()
_SCHEMAS: dict[tuple[Any, ...], dict[str, Any]] = {}


class SchemaView(SpectacularAPIView):
    """``SpectacularAPIView`` whose schema is built once per version, language and audience."""

    def _get_schema_response(self, request: Request) -> Response:
        version = self.api_version or request.version or self._get_version_parameter(request)
        key = (type(self), version, translation.get_language(), self.serve_public)
        with _LOCK:
            schema = _SCHEMAS.get(key)
            if schema is None:
                generator = self.generator_class(urlconf=self.urlconf, api_version=version, patterns=self.patterns)
                schema = _SCHEMAS[key] = generator.get_schema(request=request, public=self.serve_public)
        filename = self._get_filename(request, version)
        return Response(data=schema, headers={"Content-Disposition": f'inline; filename="{filename}"'})
