from django.apps import AppConfig


class CarparksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "carparks"
