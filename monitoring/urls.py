"""Monitoring URLs (mounted at /monitoring/)."""

from django.urls import path

from monitoring import views

app_name = "monitoring"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("processes/", views.processes, name="processes"),
    path("analytics/", views.analytics, name="analytics"),
    path("analytics/compare/", views.compare, name="compare"),
    path("analytics/event-log/", views.analytics_xes, name="analytics-xes"),
    path("heatmap/<int:version_id>/", views.heatmap, name="heatmap"),
    path("heatmap/<int:version_id>/data.json", views.heatmap_data, name="heatmap-data"),
    path("heatmap/<int:version_id>/diagram.bpmn", views.heatmap_xml, name="heatmap-xml"),
    path("alerts/", views.alert_list, name="alerts"),
    path("alerts/<int:pk>/acknowledge/", views.alert_acknowledge, name="alert-acknowledge"),
    path("alerts/rules/new/", views.rule_edit, name="rule-create"),
    path("alerts/rules/<int:pk>/", views.rule_edit, name="rule-edit"),
    path("alerts/rules/<int:pk>/delete/", views.rule_delete, name="rule-delete"),
    path("alerts/evaluate/", views.rules_evaluate, name="rules-evaluate"),
    path("statements/", views.statement_list, name="statements"),
    path("statements/build/", views.statement_build_now, name="statement-build"),
    path("statements/builds/<int:pk>/", views.statement_build_detail, name="statement-build-detail"),
    path("statements/builds/<int:pk>/progress/", views.statement_build_progress, name="statement-build-progress"),
    path("statements/preview/", views.statement_preview, name="statement-preview"),
    path("statements/<int:pk>/", views.statement_detail, name="statement-detail"),
    path("statements/<int:pk>/pdf/", views.statement_pdf, name="statement-pdf"),
]
