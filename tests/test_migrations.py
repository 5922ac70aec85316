"""Models and migrations agree (`makemigrations --check`), so no engineer forgets a migration."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_there_is_no_missing_migration():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:
        pytest.fail(f"models changed without a migration (exit {exc.code}):\n{out.getvalue()}")
