"""Both mounts of the workflows app in one URL namespace, ``workflows``: the task basket at /basket/
(basket_urls) and the engine's pages at /workflows/ (urls). So ``{% url 'workflows:basket' %}`` and
``{% url 'workflows:process-list' %}`` reverse alike, and neither URL module needs its own namespace."""

from django.urls import include, path

app_name = "workflows"
urlpatterns = [
    path("basket/", include("workflows.basket_urls")),
    path("workflows/", include("workflows.urls")),
]
