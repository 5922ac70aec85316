"""The task basket, mounted at /basket/ inside the "workflows" namespace (see workflows.portal_urls)."""

from django.urls import path

from workflows import basket_views as views

urlpatterns = [
    path("", views.basket, name="basket"),
    path("count/", views.basket_count, name="basket-count"),
    path("tasks/<int:pk>/", views.task_detail, name="task-detail"),
    path("tasks/<int:pk>/claim/", views.task_claim_view, name="task-claim"),
    path("tasks/<int:pk>/release/", views.task_release_view, name="task-release"),
    path("tasks/<int:pk>/complete/", views.task_complete_view, name="task-complete"),
    path("tasks/<int:pk>/escalate/", views.task_escalate_view, name="task-escalate"),
    path("tasks/<int:pk>/delegate/", views.task_delegate_view, name="task-delegate"),
    path("tasks/<int:pk>/reassign/", views.task_reassign_view, name="task-reassign"),
    path("tasks/<int:pk>/take-over/", views.task_take_over_view, name="task-take-over"),
    path("absences/", views.absence_list, name="absence-list"),
    path("absences/<int:pk>/delete/", views.absence_delete_view, name="absence-delete"),
]
