"""Django admin for connect: read-mostly views for support staff; secrets are never shown."""

from django.contrib import admin

from .models import CarParkLink, CpmsConnection, SyncRun


@admin.register(CpmsConnection)
class CpmsConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "kind", "base_url", "status", "is_active", "last_checked_at"]
    list_filter = ["kind", "status", "is_active"]
    search_fields = ["name", "code", "base_url"]
    exclude = ["secret_encrypted"]
    readonly_fields = ["masked_secret", "status", "status_message", "last_checked_at"]


@admin.register(CarParkLink)
class CarParkLinkAdmin(admin.ModelAdmin):
    list_display = ["carpark", "connection", "external_id", "cpms_status", "occupancy_observed_at"]
    list_filter = ["connection"]
    search_fields = ["external_id", "carpark__name", "carpark__code"]
    raw_id_fields = ["carpark"]


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "connection",
        "kind",
        "status",
        "incident",
        "created",
        "updated",
        "unchanged",
        "failed",
    ]
    list_filter = ["kind", "status", "incident", "connection"]
    readonly_fields = [field.name for field in SyncRun._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False
