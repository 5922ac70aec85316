"""manage.py demo_load: the seven demo users with their roles, idempotently, printing nothing secret."""

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import password_validation
from django.core.management import call_command

from accounts import roles
from accounts.demo import DEMO_PASSWORD, DEMO_USERS


@pytest.mark.django_db
def test_it_creates_one_demo_user_per_role_and_changes_nothing_the_second_time(django_user_model):
    out = StringIO()
    call_command("demo_load", "--only", "accounts.demo", stdout=out)
    users = {u.username: u for u in django_user_model.objects.all()}
    assert set(users) == {username for username, *_ in DEMO_USERS}
    for username, _first, _last, role in DEMO_USERS:
        assert list(users[username].groups.values_list("name", flat=True)) == [role]
    assert set(roles.ALL_ROLES) == {role for *_, role in DEMO_USERS}
    assert users["agent"].check_password(DEMO_PASSWORD)
    for user in users.values():
        password_validation.validate_password(DEMO_PASSWORD, user)  # 12+ characters, not like the name

    snapshot = list(django_user_model.objects.order_by("pk").values())
    call_command("demo_load", "--only", "accounts.demo", stdout=StringIO())
    assert list(django_user_model.objects.order_by("pk").values()) == snapshot
    printed = out.getvalue().lower()
    assert "otpauth" not in printed
    assert "secret" not in printed
    assert "password" not in printed


def test_the_readme_and_the_make_run_banner_give_the_demo_password_the_loader_sets():
    root = Path(__file__).resolve().parents[2]
    for name in ("README.md", "scripts/run_all.py", "scripts/smoke_run.sh"):
        assert DEMO_PASSWORD in (root / name).read_text(), name
