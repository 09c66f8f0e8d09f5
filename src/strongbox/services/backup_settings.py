"""Per-tenant backup settings (seed 000 ``BackupSettings``), persisted in the catalog.

What the repository decides (where the data lives, whether it is encrypted, with which
algorithm it is compressed) is shown as it really is and cannot be changed here; what
Strongbox cannot do yet is refused rather than stored and silently ignored.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from typing import Any

from croniter import croniter

from strongbox.catalog.database import Catalog
from strongbox.catalog.models import TenantSettings
from strongbox.catalog.types import utcnow
from strongbox.services.errors import FieldError, ValidationFailed
from strongbox.services.storage import RepositoryProvider

GB = 1024**3
DEFAULT_LEVEL = 6


def default_document() -> dict[str, Any]:
    return {
        "storage": {"backend": "filesystem", "filesystem": {"max_size_gb": None}},
        "retention": {"enabled": False, "max_backups": None, "max_age_days": None,
                      "max_total_size_gb": None, "auto_cleanup": False,
                      "cleanup_schedule": None},
        "compression": {"enabled": True, "algorithm": "zstd", "level": DEFAULT_LEVEL},
        "encryption": {"key_management": "local"},
        "scheduling": {"enabled": False, "schedules": []},
        "notifications": {"enabled": False, "email_recipients": [], "webhook_url": None,
                          "notify_on": ["failure"]},
    }


def valid_cron(expression: str) -> bool:
    return bool(croniter.is_valid(expression))


def _flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(doc, dict):
        flat: dict[str, Any] = {}
        for key, value in doc.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: doc}


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class BackupSettingsService:
    def __init__(self, catalog: Catalog, storage: RepositoryProvider) -> None:
        self.catalog = catalog
        self.storage = storage

    def _stored(self, tenant: str) -> dict[str, Any]:
        with self.catalog.session() as session:
            row = session.get(TenantSettings, tenant)
            stored = dict(row.document) if row is not None else {}
        return _merge(default_document(), stored)

    def get(self, tenant: str) -> dict[str, Any]:
        """The full settings document, with what the repository decides filled in."""
        doc = self._stored(tenant)
        info = self.storage.info
        doc["storage"]["filesystem"]["base_directory"] = info.location
        doc["storage"]["filesystem"]["current_usage_gb"] = round(
            self.storage.used_bytes() / GB, 6)
        doc["encryption"]["enabled"] = info.encrypted
        if info.encrypted:
            doc["encryption"]["algorithm"] = "aes-256-gcm"
        now = utcnow()
        for schedule in doc["scheduling"]["schedules"]:
            if valid_cron(schedule["schedule"]):
                schedule["next_run"] = croniter(schedule["schedule"], now).get_next(datetime)
        return doc

    def compression_level(self, tenant: str) -> int:
        compression = self._stored(tenant)["compression"]
        return int(compression["level"]) if compression["enabled"] else 0

    def quota_bytes(self, tenant: str) -> int | None:
        quota = self._stored(tenant)["storage"]["filesystem"].get("max_size_gb")
        return None if quota is None else int(quota * GB)

    def update(self, tenant: str, patch: dict[str, Any]
               ) -> tuple[dict[str, Any], list[str], list[str]]:
        """Apply a partial update; returns (settings, updated fields, warnings)."""
        # null clears an optional value (a quota, a webhook); anywhere else it means "leave
        # it as it is", like a value left out, so no required field is ever emptied.
        patch = _drop_nulls(copy.deepcopy(patch))
        self._check(patch)
        before = self._stored(tenant)
        storage = patch.get("storage", {})
        filesystem = storage.get("filesystem") or {}
        for derived in ("base_directory", "current_usage_gb"):
            filesystem.pop(derived, None)  # shown, not stored
        encryption = patch.get("encryption", {})
        encryption.pop("enabled", None)
        encryption.pop("algorithm", None)
        schedules = patch.get("scheduling", {}).get("schedules")
        if schedules is not None:
            for schedule in schedules:
                schedule["_id"] = schedule.get("_id") or str(uuid.uuid4())
                schedule.pop("next_run", None)
        after = _merge(before, patch)
        old, new = _flatten(before), _flatten(after)
        updated = sorted(key for key in new.keys() | old.keys() if old.get(key) != new.get(key))
        with self.catalog.session() as session:
            row = session.get(TenantSettings, tenant)
            if row is None:
                session.add(TenantSettings(tenant=tenant, document=after))
            else:
                row.document = after
                row.updated_at = utcnow()
        return self.get(tenant), updated, self._warnings(after)

    def _check(self, patch: dict[str, Any]) -> None:
        info = self.storage.info
        errors: list[FieldError] = []
        storage = patch.get("storage") or {}
        if storage.get("backend") not in (None, "filesystem"):
            errors.append(FieldError("storage.backend", "only the filesystem backend is "
                                     "available so far", "NOT_SUPPORTED", storage["backend"]))
        base = (storage.get("filesystem") or {}).get("base_directory")
        if base is not None and base != info.location:
            errors.append(FieldError("storage.filesystem.base_directory", "the repository "
                                     "location is set by STRONGBOX_REPOSITORY", "READ_ONLY",
                                     base))
        compression = patch.get("compression") or {}
        if compression.get("algorithm") not in (None, "zstd"):
            errors.append(FieldError("compression.algorithm", "backups are compressed with "
                                     "zstd", "NOT_SUPPORTED", compression["algorithm"]))
        level = compression.get("level")
        if level is not None and not (isinstance(level, int) and 1 <= level <= 9):
            errors.append(FieldError("compression.level", "level must be between 1 and 9",
                                     "OUT_OF_RANGE", level))
        encryption = patch.get("encryption") or {}
        if encryption.get("enabled") not in (None, info.encrypted):
            errors.append(FieldError("encryption.enabled", "encryption is a property of the "
                                     "repository, fixed when it was created", "READ_ONLY",
                                     encryption["enabled"]))
        if encryption.get("algorithm") not in (None, "aes-256-gcm"):
            errors.append(FieldError("encryption.algorithm", "the repository encrypts with "
                                     "aes-256-gcm", "NOT_SUPPORTED", encryption["algorithm"]))
        if encryption.get("key_management") not in (None, "local"):
            errors.append(FieldError("encryption.key_management", "only local keys are "
                                     "available so far", "NOT_SUPPORTED",
                                     encryption["key_management"]))
        cleanup = (patch.get("retention") or {}).get("cleanup_schedule")
        if cleanup is not None and not valid_cron(cleanup):
            errors.append(FieldError("retention.cleanup_schedule", "not a valid cron "
                                     "expression", "INVALID_CRON", cleanup))
        for index, schedule in enumerate((patch.get("scheduling") or {}).get("schedules")
                                         or []):
            if not valid_cron(schedule.get("schedule", "")):
                errors.append(FieldError(f"scheduling.schedules[{index}].schedule",
                                         "not a valid cron expression", "INVALID_CRON",
                                         schedule.get("schedule")))
        if errors:
            raise ValidationFailed("the settings are not valid", errors)

    @staticmethod
    def _warnings(doc: dict[str, Any]) -> list[str]:
        """What is accepted but will not do what the caller probably wants."""
        warnings = []
        notifications = doc["notifications"]
        if notifications["enabled"] and not (notifications.get("email_recipients")
                                             or notifications.get("webhook_url")):
            warnings.append("notifications are enabled but name no email_recipients or "
                            "webhook_url: nothing will be sent")
        return warnings


CLEARABLE = frozenset({"max_size_gb", "max_backups", "max_age_days", "max_total_size_gb",
                       "cleanup_schedule", "prefix", "key_management", "email_recipients",
                       "webhook_url", "last_run", "next_run", "filters", "options"})


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None or k in CLEARABLE}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value
