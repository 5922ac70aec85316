import pytest
from django.urls import reverse


@pytest.mark.django_db
def test_it_redirects_anonymous_visitors_to_login(client):
    response = client.get(reverse("portal-home"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


@pytest.mark.django_db
def test_it_shows_the_start_page_to_a_logged_in_user(client, django_user_model):
    user = django_user_model.objects.create_user("someone", password="x")
    client.force_login(user)
    response = client.get(reverse("portal-home"))
    assert response.status_code == 200
    assert b"Welcome" in response.content
