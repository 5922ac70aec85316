"""API v1 routes."""

from django.urls import path

app_name = "api"
urlpatterns: list[path] = []
