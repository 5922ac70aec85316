"""API v1 routes."""

from django.urls import path

from carparks.api import payment_views, views

app_name = "api"
urlpatterns = [
    path("carparks/", views.CarParkList.as_view(), name="carpark-list"),
    path("carparks/<int:pk>/", views.CarParkDetail.as_view(), name="carpark-detail"),
    path("applications/", views.ApplicationCreate.as_view(), name="application-create"),
    path("contracts/<int:pk>/", views.ContractDetail.as_view(), name="contract-detail"),
    path("contracts/<int:pk>/plate/", views.ContractPlateChange.as_view(), name="contract-plate"),
    path("contracts/<int:pk>/termination/", views.ContractTermination.as_view(), name="contract-termination-request"),
    path("contracts/<int:pk>/accept-offer/", views.ContractOfferAccept.as_view(), name="contract-accept-offer"),
    path(
        "customers/<int:pk>/payment-option/",
        payment_views.CustomerPaymentOption.as_view(),
        name="customer-payment-option",
    ),
    path("cases/", views.CaseCreate.as_view(), name="case-create"),
    path("cases/<int:pk>/", views.CaseDetail.as_view(), name="case-detail"),
    path("processes/", views.ProcessList.as_view(), name="process-list"),
    path("processes/<int:pk>/", views.ProcessDetail.as_view(), name="process-detail"),
]
