app_name = "connect"
urlpatterns: list = []
