"""The task basket (mounted at /basket/); views live in workflows."""

urlpatterns: list = []
