from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class WorkflowsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "workflows"

    def ready(self) -> None:
        # Every app's system tasks register themselves on import.
        autodiscover_modules("system_tasks")
