"""``/api/v1/settings/backup``: seed 000 section 3."""

from __future__ import annotations

from fastapi import Depends

from strongbox.api.deps import api_router, get_services, require
from strongbox.api.schemas.settings import (
    BackupSettings,
    UpdateBackupSettingsRequest,
    UpdateBackupSettingsResponse,
)
from strongbox.services.container import Services
from strongbox.services.principal import Principal, Role

router = api_router(prefix="/api/v1/settings", tags=["settings"])


@router.get("/backup", response_model=BackupSettings, response_model_exclude_none=True,
            summary="Backup settings")
def get_backup_settings(principal: Principal = Depends(require(Role.VIEWER)),
                        services: Services = Depends(get_services)) -> BackupSettings:
    return BackupSettings.model_validate(services.backup_settings.get(principal.tenant))


@router.put("/backup", response_model=UpdateBackupSettingsResponse,
            response_model_exclude_none=True, summary="Update backup settings")
def update_backup_settings(body: UpdateBackupSettingsRequest,
                           principal: Principal = Depends(require(Role.ADMIN)),
                           services: Services = Depends(get_services)
                           ) -> UpdateBackupSettingsResponse:
    patch = body.model_dump(mode="json", exclude_unset=True, by_alias=True)
    if body.scheduling is not None and body.scheduling.schedules is not None:
        # A schedule is replaced whole: its defaults count as given.
        patch["scheduling"]["schedules"] = [
            s.model_dump(mode="json", by_alias=True) for s in body.scheduling.schedules]
    settings, updated, warnings = services.backup_settings.update(principal.tenant, patch)
    return UpdateBackupSettingsResponse(
        message=f"{len(updated)} setting(s) updated" if updated else "nothing changed",
        updated_fields=updated, settings=BackupSettings.model_validate(settings),
        validation_warnings=warnings or None)
