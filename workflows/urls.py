# Mounted at /workflows/ by workflows.portal_urls, which gives these routes the "workflows" namespace.
from workflows.editor_urls import urlpatterns as editor_urlpatterns

urlpatterns: list = [*editor_urlpatterns]
