from django.apps import AppConfig


class CarparksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "carparks"

    def ready(self) -> None:
        from carparks import receivers  # noqa: F401 (connects the receivers)
