"""URLs of the business events page and the manual start pages (included by workflows/urls.py)."""

from django.urls import path

from workflows import event_views as views

urlpatterns = [
    path("events/", views.event_list, name="event-list"),
    path("events/<int:pk>/replay/", views.event_replay, name="event-replay"),
    path("events/<int:pk>/dismiss/", views.event_dismiss, name="event-dismiss"),
    path("events/replay-all/", views.events_replay_all, name="events-replay-all"),
    path("start/", views.start_list, name="start-list"),
    path("start/<str:key>/", views.start_form, name="start-form"),
]
