"""REST API v1 for the eCommerce, App and Web modules.

Every call needs a per-client token (``Authorization: Bearer …``) with the scope the call names;
calls are throttled per client; creating POSTs honour ``Idempotency-Key``. Validation errors are
``400 {"field": ["message"]}``; a request the contract's state does not allow is ``409``.

A client sees and changes only its own objects (what it created, and what belongs to the car parks
it is granted; see :mod:`carparks.access`): every lookup goes through a ``*_for_client`` selector, so
anything else is ``404``, never ``403``, and ids cannot be probed.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers as drf_serializers
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from carparks import services
from carparks.access import cases_for_client, contracts_for_client, processes_for_client
from carparks.api import serializers
from carparks.api.authentication import ApiTokenAuthentication
from carparks.api.idempotency import HEADER, idempotent
from carparks.api.permissions import HasScope
from carparks.api.throttling import ApiClientRateThrottle
from carparks.customer_services import customer_find_or_flag
from carparks.models import ApiClient, CarPark, Case, Contract, Product
from carparks.selectors import products_with_availability

ERROR = inline_serializer("Error", {"detail": drf_serializers.CharField()})
FIELD_ERRORS = OpenApiResponse(
    response=OpenApiTypes.OBJECT, description='Validation failed: {"field": ["message", …]} for each field at fault.'
)
IDEMPOTENCY = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Repeat a creating request safely: a replay with the same key returns the first response.",
)


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, services.TransitionError):
        exc = Conflict(str(exc))
    elif isinstance(exc, services.CarparkError):
        return Response({exc.field or "non_field_errors": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
    elif isinstance(exc, DjangoPermissionDenied):
        return Response({"detail": str(exc) or "Not allowed."}, status=status.HTTP_403_FORBIDDEN)
    return exception_handler(exc, context)


class ApiView(APIView):
    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [HasScope]
    throttle_classes = [ApiClientRateThrottle]
    required_scopes: dict[str, str] = {}

    def get_exception_handler(self) -> Any:
        return api_exception_handler

    def client(self) -> ApiClient:
        return self.request.auth


def _carparks() -> Any:
    return CarPark.objects.filter(is_active=True).prefetch_related(
        Prefetch("products", queryset=products_with_availability(Product.objects.filter(is_active=True)))
    )


class CarParkList(ApiView):
    required_scopes = {"GET": ApiClient.Scope.CARPARKS_READ}

    @extend_schema(
        summary="Car parks with their season products and free places",
        parameters=[OpenApiParameter("city", OpenApiTypes.STR, description="Only car parks in this city.")],
        responses={200: serializers.CarParkSerializer(many=True), 401: ERROR, 403: ERROR},
    )
    def get(self, request: Request) -> Response:
        qs = _carparks()
        if request.query_params.get("city"):
            qs = qs.filter(city__iexact=request.query_params["city"])
        return Response(serializers.CarParkSerializer(qs, many=True).data)


class CarParkDetail(ApiView):
    required_scopes = {"GET": ApiClient.Scope.CARPARKS_READ}

    @extend_schema(
        summary="One car park with its products and free places",
        responses={200: serializers.CarParkSerializer, 404: ERROR, 401: ERROR, 403: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(serializers.CarParkSerializer(get_object_or_404(_carparks(), pk=pk)).data)


class ApplicationCreate(ApiView):
    required_scopes = {"POST": ApiClient.Scope.CONTRACTS_WRITE}

    @extend_schema(
        summary="Submit a season-parking application",
        description=(
            "Creates (or finds) the customer and the contract and starts the review process. "
            "If the product has no free place the application joins the waitlist."
        ),
        request=serializers.ApplicationSerializer,
        parameters=[IDEMPOTENCY],
        responses={201: serializers.ApplicationResultSerializer, 400: FIELD_ERRORS, 401: ERROR, 403: ERROR},
    )
    def post(self, request: Request) -> Response:
        return idempotent(request, lambda: self._create(request))

    def _create(self, request: Request) -> Response:
        form = serializers.ApplicationSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        customer_data = dict(data["customer"])
        # A company number (or an email under another name) of an existing customer never attaches the
        # application to it: a new customer is created, marked as a possible duplicate for an agent to review.
        customer = customer_find_or_flag(**customer_data, channel="api", api_client=self.client())
        contract = services.contract_apply(
            customer=customer,
            product=data["product"],
            vehicles=[services.PlateInput(**vehicle) for vehicle in data["vehicles"]],
            start_date=data["start_date"],
            end_date=data.get("end_date"),
            cost_centre=data.get("cost_centre", ""),
            note=f"Applied through the API ({self.client().name}).",
            channel="api",
            api_client=self.client(),
        )
        process = _processes_for(contract).first()
        body = {
            "contract_id": contract.pk,
            "status": contract.state,
            "waitlist_position": serializers.ContractSerializer().get_waitlist_position(contract),
            "process_id": process.pk if process is not None else None,
        }
        return Response(body, status=status.HTTP_201_CREATED)


def _contract(client: ApiClient, pk: int) -> Contract:
    """The contract ``pk`` if ``client`` may see it; 404 otherwise (also for one that exists)."""
    qs = Contract.objects.select_related("product__carpark", "customer").prefetch_related(
        "vehicles", "credentials", "events"
    )
    return get_object_or_404(contracts_for_client(client, qs), pk=pk)


class ContractDetail(ApiView):
    required_scopes = {"GET": ApiClient.Scope.CONTRACTS_READ}

    @extend_schema(
        summary="A contract's status, vehicles, credentials and history",
        responses={200: serializers.ContractSerializer, 404: ERROR, 401: ERROR, 403: ERROR},
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(serializers.ContractSerializer(_contract(self.client(), pk)).data)


class ContractPlateChange(ApiView):
    required_scopes = {"POST": ApiClient.Scope.CONTRACTS_WRITE}

    @extend_schema(
        summary="Change a vehicle's plate on a contract",
        request=serializers.PlateChangeSerializer,
        responses={200: serializers.ContractSerializer, 400: FIELD_ERRORS, 404: ERROR, 409: ERROR},
    )
    def post(self, request: Request, pk: int) -> Response:
        contract = _contract(self.client(), pk)
        form = serializers.PlateChangeSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.contract_change_plate(contract=contract, channel="api", **form.validated_data)
        return Response(serializers.ContractSerializer(_contract(self.client(), pk)).data)


class ContractTermination(ApiView):
    required_scopes = {"POST": ApiClient.Scope.CONTRACTS_WRITE}

    @extend_schema(
        summary="Give notice on a contract",
        description="The end date must respect the product's notice period; leave it out for the earliest date.",
        request=serializers.TerminationSerializer,
        responses={200: serializers.ContractSerializer, 400: FIELD_ERRORS, 404: ERROR, 409: ERROR},
    )
    def post(self, request: Request, pk: int) -> Response:
        contract = _contract(self.client(), pk)
        form = serializers.TerminationSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.contract_request_termination(contract=contract, **form.validated_data)
        return Response(serializers.ContractSerializer(_contract(self.client(), pk)).data)


class ContractOfferAccept(ApiView):
    required_scopes = {"POST": ApiClient.Scope.CONTRACTS_WRITE}

    @extend_schema(
        summary="Accept the place offered to a waitlisted application",
        request=None,
        responses={200: serializers.ContractSerializer, 404: ERROR, 409: ERROR},
    )
    def post(self, request: Request, pk: int) -> Response:
        services.contract_offer_accept(contract=_contract(self.client(), pk))
        return Response(serializers.ContractSerializer(_contract(self.client(), pk)).data)


class CaseCreate(ApiView):
    required_scopes = {"POST": ApiClient.Scope.CASES_WRITE}

    @extend_schema(
        summary="Open a customer-care case",
        request=serializers.CaseCreateSerializer,
        parameters=[IDEMPOTENCY],
        responses={201: serializers.CaseSerializer, 400: FIELD_ERRORS, 401: ERROR, 403: ERROR},
    )
    def post(self, request: Request) -> Response:
        return idempotent(request, lambda: self._create(request))

    def _create(self, request: Request) -> Response:
        form = serializers.CaseCreateSerializer(data=request.data, context={"client": self.client()})
        form.is_valid(raise_exception=True)
        case = services.case_open(channel=Case.Channel.API, api_client=self.client(), **form.validated_data)
        return Response(serializers.CaseSerializer(case).data, status=status.HTTP_201_CREATED)


class CaseDetail(ApiView):
    required_scopes = {"GET": ApiClient.Scope.CASES_WRITE}

    @extend_schema(summary="A case's state", responses={200: serializers.CaseSerializer, 404: ERROR})
    def get(self, request: Request, pk: int) -> Response:
        return Response(serializers.CaseSerializer(get_object_or_404(cases_for_client(self.client()), pk=pk)).data)


BUSINESS_OBJECTS = {"contract": Contract, "case": Case, "carpark": CarPark}


def _business_objects_for(client: ApiClient, kind: str) -> Any:
    """The objects of ``kind`` ``client`` may ask about: its contracts and cases, its granted car parks."""
    if kind == "contract":
        return contracts_for_client(client)
    if kind == "case":
        return cases_for_client(client)
    return client.carparks.all()


def _processes_for(obj: Any) -> Any:
    """The engine's processes about ``obj``, newest first (an empty list in a build without the engine)."""
    try:
        from workflows.models import Process
    except ImportError:
        return Contract.objects.none()
    from django.contrib.contenttypes.models import ContentType

    return (
        Process.objects.filter(content_type=ContentType.objects.get_for_model(type(obj)), object_id=obj.pk)
        .select_related("definition", "version", "content_type")
        .order_by("-pk")
    )


def _process_row(process: Any) -> dict[str, Any]:
    obj = None
    if process.content_type_id:
        obj = {"type": process.content_type.model, "id": process.object_id}
    tasks = [
        {"name": t.name, "role": t.role, "state": t.state, "due_at": t.due_at}
        for t in process.tasks.exclude(state__in=["completed", "cancelled"])
    ]
    return {
        "id": process.pk,
        "definition": process.definition.key,
        "version": process.version.number,
        "state": process.state,
        "current_step": process.current_step,
        "result": getattr(process, "result", ""),
        "incident": bool(getattr(process, "incident_open", False)),
        "business_object": obj,
        "started_at": process.started_at,
        "ended_at": getattr(process, "ended_at", None),
        "open_tasks": tasks,
    }


class ProcessList(ApiView):
    required_scopes = {"GET": ApiClient.Scope.PROCESSES_READ}

    @extend_schema(
        summary="Processes about a contract, case or car park, and their state",
        parameters=[
            OpenApiParameter(
                "object_type", OpenApiTypes.STR, enum=list(BUSINESS_OBJECTS), required=True, description="What kind."
            ),
            OpenApiParameter("object_id", OpenApiTypes.INT, required=True, description="Its id."),
        ],
        responses={200: serializers.ProcessSerializer(many=True), 400: FIELD_ERRORS, 404: ERROR},
    )
    def get(self, request: Request) -> Response:
        kind = request.query_params.get("object_type", "")
        if kind not in BUSINESS_OBJECTS:
            return Response({"object_type": [f"Use one of: {', '.join(BUSINESS_OBJECTS)}."]}, status=400)
        raw_id = request.query_params.get("object_id", "")
        if not raw_id.isdigit() or int(raw_id) > 2**62:
            return Response({"object_id": ["Give the object's numeric id."]}, status=400)
        obj = _business_objects_for(self.client(), kind).filter(pk=int(raw_id)).first()
        if obj is None:
            raise NotFound(f"No {kind} {raw_id}.")
        processes = processes_for_client(self.client(), _processes_for(obj)).prefetch_related("tasks")[:50]
        return Response(serializers.ProcessSerializer([_process_row(p) for p in processes], many=True).data)


class ProcessDetail(ApiView):
    required_scopes = {"GET": ApiClient.Scope.PROCESSES_READ}

    @extend_schema(summary="One process and its state", responses={200: serializers.ProcessSerializer, 404: ERROR})
    def get(self, request: Request, pk: int) -> Response:
        try:
            from workflows.models import Process
        except ImportError:
            raise NotFound("No processes in this build.") from None
        qs = Process.objects.select_related("definition", "version", "content_type")
        # Only processes about a contract, case or car park the client may see (nothing else is API data).
        process = get_object_or_404(processes_for_client(self.client(), qs), pk=pk)
        return Response(serializers.ProcessSerializer(_process_row(process)).data)
