"""Disaster recovery's services, built together (one field and one line in the container).

The DR test job handler is registered with the job runner here, so the container only
calls :func:`build_disaster_recovery`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from strongbox.catalog.database import Catalog
from strongbox.catalog.types import utcnow
from strongbox.jobs.executor import JobExecutor
from strongbox.jobs.runner import JobRunner
from strongbox.jobs.store import JobStore
from strongbox.services import dr_test_job
from strongbox.services.backups import BackupService
from strongbox.services.disaster_recovery import DisasterRecoveryService
from strongbox.services.dr_test_job import DrTestJobHandler, DrTestService
from strongbox.services.recovery_initiate import RecoveryService
from strongbox.services.recovery_preview import RecoveryPreviewService
from strongbox.services.restore import RestoreService
from strongbox.services.sources import SourceService
from strongbox.services.storage import RepositoryProvider


@dataclass
class DisasterRecovery:
    plans: DisasterRecoveryService  # recovery points, the plan, DR test history
    tests: DrTestService  # starts DR tests
    preview: RecoveryPreviewService
    recovery: RecoveryService  # recovery initiate


def build_disaster_recovery(catalog: Catalog, store: JobStore, executor: JobExecutor,
                            runner: JobRunner, storage: RepositoryProvider,
                            sources: SourceService, backups: BackupService,
                            restores: RestoreService, scratch_root: Path, *,
                            clock: Callable[[], datetime] = utcnow) -> DisasterRecovery:
    plans = DisasterRecoveryService(catalog, sources, clock=clock)
    runner.register(dr_test_job.KIND, DrTestJobHandler(catalog, storage, sources, backups,
                                                       plans, scratch_root, clock=clock))
    return DisasterRecovery(
        plans=plans, tests=DrTestService(catalog, store, executor),
        preview=RecoveryPreviewService(storage, backups, restores, plans),
        recovery=RecoveryService(catalog, store, backups, restores, plans))
