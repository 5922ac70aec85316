"""URLs of the processes pages (included by workflows/urls.py)."""

from django.urls import path

from workflows import process_views as views

urlpatterns = [
    path("processes/", views.process_list, name="process-list"),
    path("processes/<int:pk>/", views.process_detail, name="process-detail"),
    path("processes/<int:pk>/<str:action>/", views.process_action, name="process-action"),
]
