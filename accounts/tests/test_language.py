"""A user's own language: chosen on the account page (or in the top bar's menu), kept, audited, used at once."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts import roles
from accounts.middleware import SESSION_KEY
from accounts.models import AuditEntry, Preference

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent(make_user, login, client):
    return login(client, make_user("erika", roles.AGENT, first_name="Erika", last_name="Muster"))


def test_the_account_page_offers_the_languages_with_the_current_choice(client, agent):
    Preference.objects.create(user=agent, language="de")
    client.post(reverse("accounts:language"), {"language": "de"})
    page = client.get(reverse("accounts:profile")).content.decode()
    assert '<html lang="de">' in page
    assert '<option value="de" selected>Deutsch</option>' in page
    assert "Sprache des Browsers" in page and "Sprache speichern" in page


def test_choosing_german_keeps_it_audits_it_and_answers_in_german(client, agent):
    response = client.post(
        reverse("accounts:language"), {"language": "de", "next": reverse("accounts:profile")}, follow=True
    )
    assert response.redirect_chain == [(reverse("accounts:profile"), 302)]
    assert Preference.objects.get(user=agent).language == "de"
    assert client.session[SESSION_KEY] == "de"
    page = response.content.decode()
    assert '<html lang="de">' in page and '<h1 class="h3 mb-3">Mein Konto</h1>' in page
    assert "Sprache gespeichert." in page
    entry = AuditEntry.objects.get(action="user.language")
    assert (entry.actor, entry.target_id, entry.old, entry.new) == (agent, str(agent.pk), None, "de")
    # Saving the same choice again changes nothing and records nothing.
    client.post(reverse("accounts:language"), {"language": "de"})
    assert AuditEntry.objects.filter(action="user.language").count() == 1


def test_the_browsers_language_clears_the_choice(client, agent):
    client.post(reverse("accounts:language"), {"language": "de"})
    client.post(reverse("accounts:language"), {"language": ""})
    assert Preference.objects.get(user=agent).language == ""
    assert SESSION_KEY not in client.session
    assert '<html lang="en">' in client.get(reverse("portal-home")).content.decode()
    page = client.get(reverse("portal-home"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert '<html lang="de">' in page and "Willkommen, Erika Muster" in page


def test_an_unknown_language_is_refused_with_a_message_and_nothing_changes(client, agent):
    response = client.post(reverse("accounts:language"), {"language": "fr"}, follow=True)
    assert "Choose one of the listed languages." in response.content.decode()
    assert not Preference.objects.filter(user=agent).exists()
    assert not AuditEntry.objects.filter(action="user.language").exists()


def test_the_choice_returns_to_the_page_it_came_from_but_never_off_site(client, agent):
    response = client.post(reverse("accounts:language"), {"language": "en", "next": "/basket/?tab=mine"})
    assert response["Location"] == "/basket/?tab=mine"
    response = client.post(reverse("accounts:language"), {"language": "en", "next": "https://evil.example/"})
    assert response["Location"] == reverse("accounts:profile")


def test_the_language_is_changed_by_post_only_and_by_a_signed_in_user(client, make_user):
    assert client.post(reverse("accounts:language"), {"language": "de"}).status_code == 302
    assert not Preference.objects.exists()
    client.force_login(make_user("norole"))
    assert client.post(reverse("accounts:language"), {"language": "de"}).status_code == 403
    client.force_login(make_user("agent", roles.AGENT))
    assert client.get(reverse("accounts:language")).status_code == 405


def test_the_preference_is_used_from_the_next_login_on(client, make_user):
    user = make_user("erika", roles.AGENT)
    Preference.objects.create(user=user, language="de")
    client.post(reverse("accounts:login"), {"username": "erika", "password": "pw"})
    page = client.get(reverse("accounts:profile"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<html lang="de">' in page and "Mein Konto" in page


def test_the_top_bar_menu_offers_the_languages_on_every_page(client, agent):
    page = client.get(reverse("portal-home")).content.decode()
    assert 'data-testid="topbar-language"' in page
    assert 'name="language" value="de" lang="de"' in page and 'name="next" value="/"' in page
