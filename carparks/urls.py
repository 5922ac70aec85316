from django.urls import path

from carparks import application_views, customer_views, product_views, views

app_name = "carparks"
urlpatterns = [
    path("", views.carpark_list, name="carpark-list"),
    path("new/", views.carpark_create, name="carpark-create"),
    path("<int:pk>/", views.carpark_detail, name="carpark-detail"),
    path("products/", views.product_list, name="product-list"),
    path("products/<int:pk>/quota/", views.product_quota, name="product-quota"),
    path("<int:pk>/edit/", product_views.carpark_edit, name="carpark-edit"),
    path("<int:carpark_pk>/products/new/", product_views.product_create, name="product-create"),
    path("products/<int:pk>/", product_views.product_detail, name="product-detail"),
    path("products/<int:pk>/edit/", product_views.product_edit, name="product-edit"),
    path("products/<int:pk>/prices/new/", product_views.product_price_new, name="product-price-new"),
    path(
        "products/<int:pk>/prices/<int:price_pk>/withdraw/",
        product_views.product_price_withdraw,
        name="product-price-withdraw",
    ),
    path("customers/", customer_views.customer_list, name="customer-list"),
    path("customers/new/", customer_views.customer_create, name="customer-create"),
    path("customers/<int:pk>/", customer_views.customer_detail, name="customer-detail"),
    path("customers/<int:pk>/edit/", customer_views.customer_edit, name="customer-edit"),
    path("customers/<int:pk>/merge/", customer_views.customer_merge, name="customer-merge"),
    path(
        "customers/<int:pk>/not-a-duplicate/", customer_views.customer_duplicate_dismiss, name="customer-not-duplicate"
    ),
    path("customers/<int:customer_pk>/cases/new/", views.case_create, name="case-create"),
    path(
        "customers/<int:customer_pk>/applications/new/",
        application_views.application_create,
        name="application-create",
    ),
    path("contracts/<int:pk>/", views.contract_detail, name="contract-detail"),
    path("contracts/<int:pk>/terminate/", views.contract_terminate, name="contract-terminate"),
    path("contracts/<int:pk>/plate/", views.contract_plate, name="contract-plate"),
    path("contracts/<int:pk>/vehicles/", views.contract_vehicles_add, name="contract-vehicles-add"),
    path("contracts/<int:pk>/card/", views.contract_card, name="contract-card"),
    path("contracts/<int:pk>/stage/", views.contract_stage, name="contract-stage"),
    path("contracts/<int:pk>/<slug:action>/", views.contract_action, name="contract-action"),
    path("cases/", views.case_list, name="case-list"),
    path("cases/<int:pk>/", views.case_detail, name="case-detail"),
    path("cases/<int:pk>/<slug:action>/", views.case_action, name="case-action"),
    path("search/", views.search, name="search"),
]
