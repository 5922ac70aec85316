from workflows.editor_urls import urlpatterns as editor_urlpatterns

app_name = "workflows"
urlpatterns: list = [*editor_urlpatterns]
