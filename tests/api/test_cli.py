"""``strongbox keys ...`` and the settings the server reads from the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strongbox.catalog.database import Catalog
from strongbox.cli.serve import keys_app
from strongbox.errors import InvalidRequest
from strongbox.services.keys import KeyService
from strongbox.settings import Settings, parse_rate


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(keys_app, ["create", "--role", "operator", "--tenant", "acme",
                                       "--name", "ci", "--data-dir", str(tmp_path), "--json"])
    assert created.exit_code == 0, created.output
    key = json.loads(created.output)
    assert key["key"].startswith("sbk_") and key["role"] == "operator"
    keys = KeyService(Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}"))
    principal = keys.authenticate(key["key"])
    assert principal is not None and (principal.tenant, principal.role) == ("acme", "operator")

    listing = runner.invoke(keys_app, ["list", "--data-dir", str(tmp_path), "--json"])
    assert key["key"] not in listing.output
    assert json.loads(listing.output)[0]["prefix"] == key["key"][:12]

    revoked = runner.invoke(keys_app, ["revoke", key["id"][:8], "--data-dir", str(tmp_path)])
    assert revoked.exit_code == 0, revoked.output
    assert keys.authenticate(key["key"]) is None


def test_keys_create_refuses_unknown_roles(tmp_path: Path) -> None:
    result = CliRunner().invoke(keys_app, ["create", "--role", "root", "--tenant", "acme",
                                           "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "role must be" in result.output


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                       tmp_path: Path) -> None:
    monkeypatch.setenv("STRONGBOX_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STRONGBOX_DEMO", "1")
    monkeypatch.setenv("STRONGBOX_RATE_LIMIT_DEFAULT", "7/30s")
    settings = Settings()
    assert settings.demo is True
    assert settings.catalog_url == f"sqlite:///{tmp_path.absolute() / 'catalog.sqlite'}"
    assert settings.repository_location == str(tmp_path.absolute() / "repository")
    assert settings.rate_limits()["default"] == (7, 30.0)
    assert settings.rate_limits()["create_backup"] == (10, 3600.0)
    monkeypatch.setenv("STRONGBOX_REPOSITORY", "/srv/repo")
    monkeypatch.setenv("STRONGBOX_DATABASE_URL", "postgresql+psycopg://u@db/strongbox")
    settings = Settings()
    assert (settings.repository_location, settings.catalog_url) == (
        "/srv/repo", "postgresql+psycopg://u@db/strongbox")


@pytest.mark.parametrize(("text", "expected"), [
    ("10/hour", (10, 3600.0)), ("100/minute", (100, 60.0)), ("3/2hours", (3, 7200.0)),
    ("5/30", (5, 30.0)), ("1/s", (1, 1.0)),
])
def test_rate_limit_syntax(text: str, expected: tuple[int, float]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["ten/hour", "10/fortnight", "10", "10/0s"])
def test_bad_rate_limits_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_rate(text)
