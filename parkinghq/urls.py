"""Root URL configuration: the portal shell plus one include per app."""

from django.contrib import admin
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from parkinghq import admin_audit, health, outbox, views

admin.site.login = views.django_admin_login
admin_audit.install(admin.site)
admin.site.site_header = "ParkingHQ Workflow — technical administration"

urlpatterns = [
    path("", views.home, name="portal-home"),
    path("health", health.health, name="health"),
    path("favicon.ico", views.favicon, name="favicon"),
    # The German texts of the portal's JavaScript (djangojs catalogues); public, as the login page loads it too.
    path(
        "jsi18n/",
        JavaScriptCatalog.as_view(packages=["workflows", "monitoring", "billing", "carparks", "connect"]),
        name="javascript-catalog",
    ),
    # Development only (404 elsewhere): the emails the portal sent, kept in var/mail/.
    path("outbox/", outbox.outbox_list, name="outbox"),
    path("outbox/<str:name>/", outbox.outbox_message, name="outbox-message"),
    path("accounts/", include("accounts.urls")),
    # /basket/ and /workflows/, both in the "workflows" namespace
    path("", include("workflows.portal_urls")),
    path("notifications/", include("notifications.urls")),
    path("carparks/", include("carparks.urls")),
    path("billing/", include("billing.urls")),
    path("connect/", include("connect.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("api/", include("parkinghq.api_urls")),
    path("django-admin/", admin.site.urls),
]

handler403 = "parkinghq.views.permission_denied"
handler404 = "parkinghq.views.page_not_found"
handler500 = "parkinghq.views.server_error"
