app_name = "carparks"
urlpatterns: list = []
