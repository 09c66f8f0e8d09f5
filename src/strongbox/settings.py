"""The one settings object of the Strongbox server (environment ``STRONGBOX_*``).

Every value has a default that makes ``strongbox serve`` work in an empty directory: the
data directory ``./.strongbox`` holds the catalog (a SQLite file) and the default local
repository. Point ``STRONGBOX_DATABASE_URL`` at PostgreSQL and ``STRONGBOX_REPOSITORY``
at shared storage to outgrow one machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from strongbox.errors import InvalidRequest

RATE_UNITS = {"s": 1.0, "second": 1.0, "m": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0,
              "d": 86400.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]*)\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """``"10/hour"``, ``"100/minute"``, ``"5/30s"`` or ``"5/30"`` (seconds) → (count, window)."""
    match = _RATE.match(text.lower())
    if not match:
        raise InvalidRequest(f"rate limit {text!r} is not COUNT/PERIOD, e.g. 10/hour")
    count, number, unit = match.groups()
    if not unit:
        seconds = 1.0
    elif unit in RATE_UNITS:
        seconds = RATE_UNITS[unit]
    elif unit.endswith("s") and unit[:-1] in RATE_UNITS:
        seconds = RATE_UNITS[unit[:-1]]
    else:
        raise InvalidRequest(f"rate limit {text!r}: unknown period {unit!r}")
    window = (int(number) if number else 1) * seconds
    if window <= 0:
        raise InvalidRequest(f"rate limit {text!r}: the period must be positive")
    return int(count), window


def config_file() -> Path | None:
    """The TOML config file: ``STRONGBOX_CONFIG_FILE``, else ``./strongbox.toml`` if present."""
    named = os.environ.get("STRONGBOX_CONFIG_FILE")
    if named:
        path = Path(named)
        if not path.is_file():
            raise InvalidRequest(f"STRONGBOX_CONFIG_FILE {named!r}: no such file")
        return path
    default = Path("strongbox.toml")
    return default if default.is_file() else None


class Settings(BaseSettings):
    """Values come from, highest first: constructor arguments, ``STRONGBOX_*`` environment
    variables, the TOML config file (same names, lower case, without the prefix), defaults."""

    model_config = SettingsConfigDict(env_prefix="STRONGBOX_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    data_dir: Path = Path(".strongbox")
    database_url: str = Field(default="",
                              description="SQLAlchemy URL; empty: <data_dir>/catalog.sqlite")
    repository: str = Field(default="",
                            description="Repository location; empty: <data_dir>/repository")
    passphrase: SecretStr | None = None
    passphrase_file: Path | None = None
    # Seals secrets at rest in the catalog (DSN passwords); default: <data_dir>/secret.key
    secret_key: SecretStr | None = None
    demo: bool = False
    demo_tenant: str = "default"

    job_workers: int = Field(default=2, ge=1, le=64)
    job_progress_interval: float = Field(default=0.5, ge=0.0)
    delete_wait_seconds: float = Field(default=15.0, ge=0.0)

    # Schedules (docs/schedules.md): the in-server scheduler thread and how often it looks.
    scheduler_enabled: bool = Field(default=True, description="Run schedules in this server")
    scheduler_interval: float = Field(default=30.0, gt=0.0, le=3600.0,
                                      description="Longest pause between scheduler passes, s")

    upload_max_bytes: int = Field(default=5 << 30, ge=1,
                                  description="Largest upload (POST /restore/upload); 413 above")
    archive_max_uncompressed_bytes: int = Field(
        default=50 << 30, ge=1, description="Largest archive contents accepted on upload")
    archive_max_ratio: float = Field(
        default=500.0, gt=1.0, description="Largest compression ratio accepted on upload")
    restore_roots: list[Path] = Field(
        default_factory=list,
        description="Directories file trees may be restored into (target.path), besides the "
                    "source's own directory and <data_dir>/restores; JSON list in the env")

    rate_limits_enabled: bool = True
    rate_limit_create_backup: str = "10/hour"
    rate_limit_restore: str = "5/hour"
    rate_limit_restore_upload: str = "3/hour"
    rate_limit_download: str = "20/hour"
    rate_limit_default: str = "100/minute"

    # Monitoring (docs/monitoring.md): logs, /metrics, /api/v1/status alerts.
    log_format: str = Field(default="auto", pattern="^(auto|json|text)$",
                            description="json, text, or auto: text on a terminal, else json")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    access_log: bool = Field(default=True, description="One log line per HTTP request")
    metrics_public: bool = Field(default=False,
                                 description="Serve /metrics without an API key")
    status_storage_warning_percent: float = Field(default=80.0, ge=0.0, le=100.0)
    status_storage_critical_percent: float = Field(default=95.0, ge=0.0, le=100.0)
    status_schedule_grace_seconds: float = Field(default=600.0, ge=0.0)
    config_snapshot_allowed_paths: list[str] = Field(
        default_factory=list, description="Folders under which POST /snapshots may capture "
                                          "server paths; empty: anywhere but /")

    # Notifications (docs/notifications.md): webhooks and e-mail about backups and restores.
    notification_max_attempts: int = Field(
        default=6, ge=1, le=100, description="Tries per delivery before it is marked failed")
    notification_retry_base_seconds: float = Field(
        default=30.0, ge=0.0, description="Wait before the 2nd try; doubled for each next one")
    notification_retry_max_seconds: float = Field(
        default=3600.0, ge=0.0, description="Longest wait between two tries")
    notification_timeout_seconds: float = Field(
        default=10.0, gt=0.0, description="HTTP and SMTP timeout of one try")
    notification_workers: int = Field(default=4, ge=1, le=64,
                                      description="Deliveries sent at the same time")
    smtp_host: str = Field(default="", description="SMTP server; empty: no e-mail is sent")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: str = Field(default="starttls", pattern="^(starttls|ssl|none)$",
                               description="starttls (port 587), ssl (465) or none")
    smtp_username: str = Field(default="", description="Empty: no SMTP login")
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(default="", description="From address; empty: strongbox@<host>")

    @field_validator("rate_limit_create_backup", "rate_limit_restore",
                     "rate_limit_restore_upload", "rate_limit_download", "rate_limit_default")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        try:
            parse_rate(value)
        except InvalidRequest as exc:
            raise ValueError(exc.message) from exc
        return value

    @property
    def catalog_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'catalog.sqlite').absolute()}"

    @property
    def repository_location(self) -> str:
        return self.repository or str((self.data_dir / "repository").absolute())

    def passphrase_value(self) -> str | None:
        """The repository passphrase: the variable, else the file, else None."""
        if self.passphrase is not None:
            return self.passphrase.get_secret_value()
        if self.passphrase_file is not None:
            try:
                return self.passphrase_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise InvalidRequest(f"cannot read passphrase file: {exc.strerror}") from exc
        return None

    def rate_limits(self) -> dict[str, tuple[int, float]]:
        return {
            "create_backup": parse_rate(self.rate_limit_create_backup),
            "restore": parse_rate(self.rate_limit_restore),
            "restore_upload": parse_rate(self.rate_limit_restore_upload),
            "download": parse_rate(self.rate_limit_download),
            "default": parse_rate(self.rate_limit_default),
        }
