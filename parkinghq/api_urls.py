"""REST API for the eCommerce, App and Web modules (under /api/)."""

from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularSwaggerSplitView

from parkinghq.api_schema import SchemaView

# Swagger UI is served from our static files (drf-spectacular-sidecar) with its script in a separate
# request, so the strict script-src stays; only its inline styles need 'unsafe-inline' here.
docs_view = csp_update({"style-src": ["'unsafe-inline'"], "img-src": ["data:"]})(
    SpectacularSwaggerSplitView.as_view(url_name="api-schema")
)

urlpatterns = [
    path("v1/", include("carparks.api.urls")),
    path("v1/", include("billing.api_urls")),
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("docs/", docs_view, name="api-docs"),
]
