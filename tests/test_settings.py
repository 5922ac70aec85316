"""Settings: typed env helpers that name the bad variable; production refuses to start without secrets."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from parkinghq.env import ConfigError, envbool, envint, envlist, envstr

ROOT = Path(__file__).resolve().parent.parent


def test_it_reads_typed_values(monkeypatch):
    monkeypatch.setenv("PHQ_FLAG", "Yes")
    monkeypatch.setenv("PHQ_NUMBER", " 42 ")
    monkeypatch.setenv("PHQ_HOSTS", "a.example, b.example,,")
    assert envbool("PHQ_FLAG", False) is True
    assert envint("PHQ_NUMBER", 1) == 42
    assert envlist("PHQ_HOSTS") == ["a.example", "b.example"]
    assert envstr("PHQ_UNSET_VARIABLE", "fallback") == "fallback"


def test_an_empty_value_means_the_default(monkeypatch):
    for name in ("PHQ_EMPTY_STR", "PHQ_EMPTY_BOOL", "PHQ_EMPTY_INT", "PHQ_EMPTY_LIST"):
        monkeypatch.setenv(name, "")
    assert envstr("PHQ_EMPTY_STR", "fallback") == "fallback"
    assert envbool("PHQ_EMPTY_BOOL", True) is True
    assert envint("PHQ_EMPTY_INT", 7) == 7
    assert envlist("PHQ_EMPTY_LIST", ["a"]) == ["a"]


@pytest.mark.parametrize(
    ("reader", "value"),
    [(lambda: envbool("PHQ_BAD", False), "maybe"), (lambda: envint("PHQ_BAD", 1), "4x2")],
)
def test_it_rejects_a_bad_value_naming_the_variable(monkeypatch, reader, value):
    monkeypatch.setenv("PHQ_BAD", value)
    with pytest.raises(ConfigError, match="PHQ_BAD") as excinfo:
        reader()
    assert value in str(excinfo.value)


def test_it_names_a_missing_required_variable(monkeypatch):
    monkeypatch.delenv("PHQ_NEEDED", raising=False)
    with pytest.raises(ConfigError, match="PHQ_NEEDED must be set"):
        envstr("PHQ_NEEDED", required=True)


def run_manage(*args, **env):
    """manage.py in a fresh interpreter; a value of None removes the variable."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET_KEY", "ALLOWED_HOSTS"))}
    clean.update(env)
    clean = {k: v for k, v in clean.items() if v is not None}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def production_env(**overrides):
    env = {
        "DJANGO_SETTINGS_MODULE": "parkinghq.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "workflow.parkinghq.example",
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parkinghq"),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "STRIPE_SECRET_KEY": "sk_live_" + secrets.token_urlsafe(24),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_urlsafe(24),
    }
    env.update(overrides)
    return env


def test_check_deploy_is_clean_with_production_settings_and_secrets():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY must be set"),
        ("DATABASE_URL", "DATABASE_URL must be set"),
        ("REDIS_URL", "REDIS_URL must be set"),
        ("ALLOWED_HOSTS", "ALLOWED_HOSTS must list"),
    ],
)
def test_production_refuses_to_start_without_a_secret(missing, message):
    result = run_manage("check", "--deploy", **production_env(**{missing: None}))
    assert result.returncode == 2
    assert f"Configuration error: {message}" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_refuses_a_weak_secret_key():
    result = run_manage("check", **production_env(SECRET_KEY="short"))
    assert result.returncode == 2
    assert "SECRET_KEY must be a random value" in result.stderr


def test_a_bad_value_stops_manage_py_with_the_variable_named():
    result = run_manage("check", DEBUG="perhaps")
    assert result.returncode == 2
    assert "Configuration error: DEBUG must be one of" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STRIPE_SECRET_KEY", None),
        ("STRIPE_SECRET_KEY", ""),
        ("STRIPE_SECRET_KEY", "sk_test_parkinghq_local"),
        ("STRIPE_WEBHOOK_SECRET", None),
        ("STRIPE_WEBHOOK_SECRET", "whsec_parkinghq_local"),
    ],
)
def test_production_refuses_the_public_default_or_a_missing_stripe_secret(variable, value):
    """The placeholders of .env.example and the development settings are public: anyone could sign a
    webhook (mark invoices paid) with them."""
    result = run_manage("check", **production_env(**{variable: value}))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Configuration error: {variable} must be" in result.stderr
    assert "Traceback" not in result.stderr
