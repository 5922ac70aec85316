from django.urls import path

from . import views

app_name = "connect"
urlpatterns = [
    path("", views.connection_list, name="connection-list"),
    path("new/", views.connection_edit, name="connection-create"),
    path("<int:pk>/", views.connection_detail, name="connection-detail"),
    path("<int:pk>/edit/", views.connection_edit, name="connection-edit"),
    path("<int:pk>/test/", views.connection_test, name="connection-test"),
    path("<int:pk>/rights/", views.right_mappings, name="connection-right-mappings"),
    path("<int:pk>/sync/<str:kind>/", views.connection_sync, name="connection-sync"),
    path("<int:pk>/progress/", views.connection_progress, name="connection-progress"),
    path("runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("runs/<int:pk>/progress/", views.run_progress, name="run-progress"),
    path("carparks/<int:pk>/cpms/", views.carpark_cpms, name="carpark-cpms"),
    path("carparks/<int:pk>/cpms/refresh/", views.carpark_cpms_refresh, name="carpark-cpms-refresh"),
]
