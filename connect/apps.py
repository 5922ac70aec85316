"""Connect: CPMS adapters, the CPMS simulator, car-park data sync and credential push."""

from django.apps import AppConfig


class ConnectConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "connect"
    verbose_name = "Connect (CPMS)"

    def ready(self) -> None:
        from carparks.signals import credentials_changed

        from . import receivers

        credentials_changed.connect(receivers.push_changed_credentials, dispatch_uid="connect.push_changed_credentials")
        try:
            from workflows.signals import incident_opened
        except ImportError:  # pragma: no cover - the engine ships with the product
            return
        incident_opened.connect(receivers.close_runs_of_failed_step, dispatch_uid="connect.close_runs_of_failed_step")
