"""Everything the server runs on, built from the settings in one place.

The API, the CLI and tests all start from :func:`build_services`; :meth:`Services.start`
brings the catalog schema up to date, opens (or creates) the repository and fails the
jobs a previous server left unfinished.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from strongbox.catalog.database import Catalog
from strongbox.jobs.events import EventBus
from strongbox.jobs.executor import ThreadJobExecutor
from strongbox.jobs.runner import JobRunner
from strongbox.jobs.store import JobStore, JobView
from strongbox.services import backup_job, config_snapshots, restore_job, verification
from strongbox.services.audit import AuditService
from strongbox.services.backup_job import BackupJobHandler
from strongbox.services.backup_settings import BackupSettingsService
from strongbox.services.backups import BackupService
from strongbox.services.cleanup import CleanupJobHandler, CleanupService
from strongbox.services.config_snapshots import ConfigSnapshotService, SnapshotRestoreHandler
from strongbox.services.demo import DemoSetup, set_up_demo
from strongbox.services.keys import KeyService
from strongbox.services.notifications import NotificationService, build_notifications
from strongbox.services.operations import OperationsService
from strongbox.services.policies import PolicyService
from strongbox.services.recovery_setup import DisasterRecovery, build_disaster_recovery
from strongbox.services.restore import RestoreService
from strongbox.services.restore_job import RestoreJobHandler
from strongbox.services.restore_preview import RestorePreviewService
from strongbox.services.schedule_actions import retention_after_run, scheduler_actions
from strongbox.services.scheduler import Scheduler
from strongbox.services.schedules import ScheduleService
from strongbox.services.secret_box import SecretBox
from strongbox.services.sources import SourceService
from strongbox.services.statistics import OverviewStatistics, StatisticsService
from strongbox.services.status import StatusService, Thresholds
from strongbox.services.storage import RepositoryProvider
from strongbox.services.verification import VerificationService, VerifyJobHandler
from strongbox.services.verify_after_backup import VerifyAfterBackup
from strongbox.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class StartReport:
    interrupted: list[JobView] = field(default_factory=list)
    demo: DemoSetup | None = None
    has_keys: bool = True


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    storage: RepositoryProvider
    bus: EventBus
    jobs: JobStore
    runner: JobRunner
    executor: ThreadJobExecutor
    keys: KeyService
    sources: SourceService
    backup_settings: BackupSettingsService
    backups: BackupService
    statistics: StatisticsService
    audit: AuditService
    restores: RestoreService
    restore_preview: RestorePreviewService
    status: StatusService
    statistics_overview: OverviewStatistics
    config_snapshots: ConfigSnapshotService
    verification: VerificationService
    disaster_recovery: DisasterRecovery
    cleanup: CleanupService
    notifications: NotificationService
    schedules: ScheduleService
    scheduler: Scheduler
    policies: PolicyService = field(init=False)  # over schedules, DR and cleanup
    verify_after_backup: VerifyAfterBackup = field(init=False)  # needs verification
    operations: OperationsService = field(init=False)  # every job kind: list, cancel

    def start(self, *, demo: bool | None = None) -> StartReport:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog.migrate()
        self.storage.ensure()
        self.notifications.start(self.bus)  # before jobs run: hears every start
        self.verify_after_backup.start(self.bus)
        report = StartReport(interrupted=self.executor.start())
        self.verify_after_backup.catch_up()  # after interrupted jobs were failed
        for job in report.interrupted:
            log.warning("job %s (%s) was interrupted by a restart and is marked failed",
                        job.id, job.kind)
        if self.settings.demo if demo is None else demo:
            report.demo = set_up_demo(self.catalog, self.keys, self.sources,
                                      self.settings.data_dir, self.settings.demo_tenant)
        report.has_keys = self.keys.any_exist()
        if self.settings.scheduler_enabled:  # after the interrupted jobs were failed
            self.scheduler.start()
        return report

    def stop(self) -> None:
        self.scheduler.stop()  # first: it would start jobs
        self.verify_after_backup.stop()  # so would this; catch_up() at the next start
        self.executor.shutdown(wait=True)
        self.notifications.stop()  # after the jobs: their last events are queued
        self.catalog.dispose()


def build_services(settings: Settings) -> Services:
    catalog = Catalog(settings.catalog_url)
    storage = RepositoryProvider(settings.repository_location, settings.passphrase_value())
    bus = EventBus()
    store = JobStore(catalog)
    runner = JobRunner(store, bus, interval=settings.job_progress_interval)
    executor = ThreadJobExecutor(runner, settings.job_workers)
    secret_key = settings.secret_key.get_secret_value() if settings.secret_key else None
    sources = SourceService(catalog, SecretBox(settings.data_dir / "secret.key", secret_key))
    backup_settings = BackupSettingsService(catalog, storage)
    runner.register(backup_job.KIND, BackupJobHandler(catalog, storage, sources))
    runner.register(restore_job.KIND, RestoreJobHandler(storage, sources))
    backups = BackupService(catalog, store, executor, storage, sources, backup_settings,
                            delete_wait_seconds=settings.delete_wait_seconds)
    restores = RestoreService(store, executor, runner, storage, sources, backups,
                              cancel_wait_seconds=settings.delete_wait_seconds,
                              restore_roots=[settings.data_dir / "restores",
                                             *settings.restore_roots],
                              protected=[settings.data_dir])
    runner.register(verification.KIND, VerifyJobHandler(catalog, storage, sources, backups,
                                                        settings.data_dir / "scratch"))
    runner.register(config_snapshots.KIND, SnapshotRestoreHandler(catalog, store, runner,
                                                                  storage, sources))
    status = StatusService(catalog, storage, sources, backup_settings, executor=executor,
                           workers=settings.job_workers, thresholds=Thresholds(
                               settings.status_storage_warning_percent,
                               settings.status_storage_critical_percent,
                               settings.status_schedule_grace_seconds))
    disaster_recovery = build_disaster_recovery(
        catalog, store, executor, runner, storage, sources, backups, restores,
        settings.data_dir / "dr-scratch")
    cleanup = CleanupService(catalog, store, executor, storage, backups, backup_settings)
    runner.register(CleanupJobHandler.kind, CleanupJobHandler(catalog, storage, backups,
                                                              cleanup.in_use_ids))
    schedules = ScheduleService(catalog, sources)
    services = Services(
        schedules=schedules,
        scheduler=Scheduler(schedules, store, bus=bus, interval=settings.scheduler_interval),
        cleanup=cleanup,
        notifications=build_notifications(settings, catalog, store),
        disaster_recovery=disaster_recovery,
        status=status, statistics_overview=OverviewStatistics(catalog, storage),
        config_snapshots=ConfigSnapshotService(
            catalog, store, executor, backups, sources,
            allowed_paths=settings.config_snapshot_allowed_paths),
        settings=settings, catalog=catalog, storage=storage, bus=bus, jobs=store,
        runner=runner, executor=executor, keys=KeyService(catalog), sources=sources,
        backup_settings=backup_settings, backups=backups,
        statistics=StatisticsService(catalog, storage, backup_settings),
        audit=AuditService(catalog), restores=restores,
        restore_preview=RestorePreviewService(storage, sources, backups, restores),
        verification=VerificationService(catalog, store, executor, backups, sources))
    services.scheduler.actions.update(scheduler_actions(services))
    services.verify_after_backup = VerifyAfterBackup(catalog, store, services.verification)
    services.scheduler.after_run = retention_after_run(services.cleanup)
    services.policies = PolicyService(schedules, sources, disaster_recovery.plans, cleanup)
    services.operations = OperationsService(
        catalog, store, executor, runner, cancel_wait_seconds=settings.delete_wait_seconds)
    return services
