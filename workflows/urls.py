# Mounted at /workflows/ by workflows.portal_urls, which gives these routes the "workflows" namespace.
from workflows.editor_urls import urlpatterns as editor_urlpatterns
from workflows.event_urls import urlpatterns as event_urlpatterns
from workflows.process_urls import urlpatterns as process_urlpatterns

urlpatterns: list = [*editor_urlpatterns, *process_urlpatterns, *event_urlpatterns]
