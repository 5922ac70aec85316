"""Create an API client and print its token once (it is stored only as a hash)."""

from django.core.management.base import BaseCommand, CommandError

from carparks.api.authentication import api_client_create
from carparks.models import ApiClient, CarPark


class Command(BaseCommand):
    help = "Create an API client for the REST API and print its token (shown only now)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scope",
            action="append",
            dest="scopes",
            choices=ApiClient.Scope.values,
            help="Repeat for several scopes; default: all of them.",
        )
        parser.add_argument(
            "--carpark",
            action="append",
            dest="carparks",
            default=[],
            metavar="CODE",
            help="Grant a car park (by code): the client sees its contracts, cases and invoices. Repeatable.",
        )

    def handle(self, *args, name: str, scopes: list[str] | None, carparks: list[str], **options) -> None:
        if ApiClient.objects.filter(name=name).exists():
            raise CommandError(f"An API client named {name!r} already exists.")
        granted = list(CarPark.objects.filter(code__in=carparks))
        unknown = set(carparks) - {c.code for c in granted}
        if unknown:
            raise CommandError(f"No car park with code {', '.join(sorted(unknown))}.")
        client, token = api_client_create(name=name, scopes=scopes or list(ApiClient.Scope.values), carparks=granted)
        self.stdout.write(f"{client.name}: {token}")
        self.stdout.write("Store this token now; only its hash is kept.")
