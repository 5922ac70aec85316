import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts import roles


@pytest.mark.django_db
def test_it_redirects_anonymous_visitors_to_login(client):
    response = client.get(reverse("portal-home"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


@pytest.mark.django_db
def test_it_shows_the_start_page_to_a_user_with_a_role(client, django_user_model):
    user = django_user_model.objects.create_user("someone", password="x")
    user.groups.add(Group.objects.get(name=roles.AGENT))
    client.force_login(user)
    response = client.get(reverse("portal-home"))
    assert response.status_code == 200
    assert b"Welcome" in response.content


@pytest.mark.django_db
def test_it_shows_the_403_page_in_the_portal_look(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("norole", password="x"))
    response = client.get(reverse("portal-home"))
    assert response.status_code == 403
    assert b"You do not have permission" in response.content
    assert b"navbar" in response.content


@pytest.mark.django_db
def test_the_django_admin_logs_in_through_the_portal_login_only(client, make_user, login):
    response = client.get("/django-admin/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/login/?next=/django-admin/"
    client.force_login(make_user("agent", roles.AGENT))
    assert client.get("/django-admin/", follow=True).status_code == 403
    staff = make_user("tech", roles.ADMINISTRATOR, is_staff=True)
    login(client, staff)
    assert client.get("/django-admin/login/?next=/django-admin/")["Location"] == "/django-admin/"
    assert client.get("/django-admin/").status_code == 200


@pytest.mark.django_db
def test_only_administrators_see_the_administration_link(client, make_user, login):
    login(client, make_user("agent", roles.AGENT))
    assert b"/accounts/users/" not in client.get(reverse("portal-home")).content
    login(client, make_user("boss", roles.ADMINISTRATOR))
    assert b"/accounts/users/" in client.get(reverse("portal-home")).content


@pytest.mark.django_db
def test_it_refuses_nul_characters_in_query_parameters_with_400(client):
    response = client.get("/api/v1/carparks/", {"city": "Ber\x00lin"})
    assert response.status_code == 400
    assert b"NUL" in response.content
