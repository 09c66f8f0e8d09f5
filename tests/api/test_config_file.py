"""Server settings come from the environment and a TOML config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongbox.errors import InvalidRequest
from strongbox.settings import Settings


def test_toml_config_file_with_environment_overrides(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "strongbox.toml"
    config.write_text('data_dir = "/srv/strongbox"\njob_workers = 3\n')
    monkeypatch.setenv("STRONGBOX_CONFIG_FILE", str(config))
    monkeypatch.delenv("STRONGBOX_DATA_DIR", raising=False)
    monkeypatch.setenv("STRONGBOX_JOB_WORKERS", "5")
    settings = Settings()
    assert settings.data_dir == Path("/srv/strongbox")
    assert settings.job_workers == 5  # the environment wins over the file


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGBOX_CONFIG_FILE", "/nonexistent/strongbox.toml")
    with pytest.raises(InvalidRequest, match="no such file"):
        Settings()
