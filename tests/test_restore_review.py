"""Review of the code that writes users' data back: each test shows a defect found in
services/file_restore.py, restore_job.py or restore.py (and now fixed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from strongbox.repository.repository import Repository
from strongbox.services import file_restore
from strongbox.services.file_restore import FileRestoreSpec
from strongbox.sources.files.archiver import backup_files


def _tree(root: Path) -> None:
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "app.ini").write_text("port=1\n")
    (root / "conf" / "other.ini").write_text("other\n")


def test_a_folder_replacing_a_symlink_gets_all_its_files(repo: Repository,
                                                         tmp_path: Path) -> None:
    """The backup has a folder where the target now has a symlink (to a folder elsewhere
    that holds the same files). The plan must not look through the link: the folder is
    new, so every file in it is created. Before the fix the files were planned through
    the link -- ``unchanged`` (and never written: the restored folder came back empty)
    or ``overwrite`` (and the swap failed)."""
    source = tmp_path / "src"
    _tree(source)
    snapshot = backup_files(repo, [source])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "app.ini").write_text("port=1\n")  # same content as the backup
    (elsewhere / "other.ini").write_text("changed\n")  # different content
    target = tmp_path / "target"
    target.mkdir()
    (target / "conf").symlink_to(elsewhere)
    spec = FileRestoreSpec(mode="merge", target=str(target), on_conflict="overwrite")

    plan = file_restore.plan_file_restore(repo, snapshot, spec)
    by_path = {a.path: a for a in plan.actions}
    assert by_path["conf"].action == "overwrite"
    assert by_path["conf/app.ini"].action == "create"
    assert by_path["conf/other.ini"].action == "create"

    file_restore.restore_file_tree(repo, snapshot, spec, "job-symlinked-folder")
    assert not (target / "conf").is_symlink()
    assert (target / "conf" / "app.ini").read_text() == "port=1\n"
    assert (target / "conf" / "other.ini").read_text() == "other\n"
    # What the link pointed at is untouched.
    assert (elsewhere / "other.ini").read_text() == "changed\n"


def _planted_journal(target: Path, job_id: str, victim: Path, moved_to: Path) -> Path:
    work = file_restore.staging_dir(target, job_id)
    work.mkdir()
    (work / "journal.jsonl").write_text(json.dumps(
        {"op": "move", "src": str(moved_to), "dst": str(victim)}) + "\n")
    return work


def test_a_staging_folder_the_restore_did_not_create_is_not_undone(
        repo: Repository, tmp_path: Path) -> None:
    """A folder already at the staging name (planted by someone who can write into the
    target, or left by anything else) is not this restore's: before the fix the restore
    failed to create its own, then "undid" the foreign journal -- renaming files outside
    the target -- and deleted the folder."""
    source = tmp_path / "src"
    _tree(source)
    snapshot = backup_files(repo, [source])
    target = tmp_path / "target"
    target.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "precious.txt"
    victim.write_text("precious")
    work = _planted_journal(target, "job-planted-0001", victim, outside / "stolen.txt")
    spec = FileRestoreSpec(mode="merge", target=str(target))

    try:
        file_restore.restore_file_tree(repo, snapshot, spec, "job-planted-0001")
    except Exception as exc:  # refusing is fine; touching the outside is not
        assert getattr(exc, "code", None) is not None, exc
    assert victim.read_text() == "precious"
    assert not (outside / "stolen.txt").exists()
    assert work.is_dir()  # not ours: left alone


def test_recovery_ignores_journal_entries_outside_the_target(tmp_path: Path) -> None:
    """A journal only ever records moves inside its target; recovery (at restart) must
    not carry out anything else."""
    target = tmp_path / "target"
    target.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "precious.txt"
    victim.write_text("precious")
    _planted_journal(target, "job-planted-0002", victim, outside / "stolen.txt")
    file_restore.recover(target, "job-planted-0002")
    assert victim.read_text() == "precious"
    assert not (outside / "stolen.txt").exists()


def test_a_failed_job_does_not_recover_through_a_symlinked_target(tmp_path: Path) -> None:
    """The job refuses a target that became a symlink; its failure hook must not then
    run the "recovery" of whatever staging folder the link leads to."""
    from types import SimpleNamespace

    from strongbox.services.restore_job import RestoreJobHandler

    real = tmp_path / "real"
    real.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "precious.txt"
    victim.write_text("precious")
    job_id = "job-symlinked-0003"
    _planted_journal(real, job_id, victim, outside / "stolen.txt")
    target = tmp_path / "target"
    target.symlink_to(real)

    job = SimpleNamespace(id=job_id, params={"kind": "files", "target": str(target)})
    RestoreJobHandler.failed(RestoreJobHandler.__new__(RestoreJobHandler), job,
                             {})  # type: ignore[arg-type]
    assert victim.read_text() == "precious"
    assert file_restore.staging_dir(real, job_id).is_dir()
    assert os.path.islink(target)


def _restore_service(data_dir: Path, roots: list[Path]):  # type: ignore[no-untyped-def]
    from strongbox.services.restore import RestoreService

    return RestoreService(None, None, None, None, None, None,  # type: ignore[arg-type]
                          restore_roots=roots, protected=[data_dir])


def _target_errors(service, source_path: Path, target: Path) -> list[str]:  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    from strongbox.services.restore import NewRestore

    errors: list = []
    service._file_target(NewRestore(backup_id="x", mode="merge", target_path=str(target)),
                         SimpleNamespace(config={"path": str(source_path)}), errors)
    return [e.code for e in errors]


def test_a_target_inside_the_servers_data_is_refused(tmp_path: Path) -> None:
    """A source whose folder holds the server's data directory (``/srv`` with the data in
    ``/srv/strongbox``): a restore into the data directory's repository was allowed
    before the fix (only a target holding the data directory was refused)."""
    srv = tmp_path / "srv"
    data_dir = srv / "strongbox"
    (data_dir / "repository").mkdir(parents=True)
    (data_dir / "restores").mkdir()
    (data_dir / "demo").mkdir()
    service = _restore_service(data_dir, [data_dir / "restores"])
    assert _target_errors(service, srv, data_dir / "repository") == ["PROTECTED_PATH"]
    assert _target_errors(service, srv, data_dir) == ["PROTECTED_PATH"]
    assert _target_errors(service, srv, srv / "www") == []
    # Roots set aside inside the data directory stay usable.
    assert _target_errors(service, srv, data_dir / "restores" / "x") == []
    assert _target_errors(service, data_dir / "demo", data_dir / "demo") == []


def test_a_target_under_a_file_is_a_clear_error(repo: Repository, tmp_path: Path) -> None:
    """``target.path`` below a regular file: refused by validation (400), and the job
    itself fails with a clear error -- before the fix, a raw ``NotADirectoryError``
    escaped (INTERNAL_ERROR, "unexpected error")."""
    from strongbox.errors import StrongboxError

    source = tmp_path / "src"
    _tree(source)
    snapshot = backup_files(repo, [source])
    a_file = tmp_path / "root" / "a_file"
    a_file.parent.mkdir()
    a_file.write_text("x")
    target = a_file / "sub" / "dir"
    service = _restore_service(tmp_path / "data", [tmp_path / "root"])
    assert _target_errors(service, tmp_path / "root", target) == ["NOT_A_DIRECTORY"]
    spec = FileRestoreSpec(mode="merge", target=str(target))
    try:
        file_restore.restore_file_tree(repo, snapshot, spec, "job-under-a-file")
    except StrongboxError as exc:
        assert exc.code == "SOURCE_ERROR" and "a_file" in exc.message
    else:
        raise AssertionError("the restore should have failed")
    assert a_file.read_text() == "x"


def test_a_folder_swapped_for_a_symlink_during_staging_is_not_written_through(
        repo: Repository, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Staging can take long. A folder the plan found real (``keep``) and that someone
    replaces with a symlink before the swap must not lead the swap outside the target:
    before the fix, the overwrite moved the file *outside* aside (deleted with the
    staging folder) and put the restored one there."""
    from strongbox.errors import StrongboxError

    source = tmp_path / "src"
    _tree(source)
    snapshot = backup_files(repo, [source])
    target = tmp_path / "target"
    (target / "conf").mkdir(parents=True)
    (target / "conf" / "app.ini").write_text("edited\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "app.ini").write_text("outside\n")
    real_stage = file_restore._stage

    def stage_then_swap_folder(*args, **kwargs):  # type: ignore[no-untyped-def]
        real_stage(*args, **kwargs)
        os.rename(target / "conf", tmp_path / "conf-moved")
        (target / "conf").symlink_to(outside)

    monkeypatch.setattr(file_restore, "_stage", stage_then_swap_folder)
    spec = FileRestoreSpec(mode="merge", target=str(target), on_conflict="overwrite")
    try:
        file_restore.restore_file_tree(repo, snapshot, spec, "job-swapped-folder")
    except StrongboxError as exc:
        assert exc.code == "UNSAFE_PATH", exc
    else:
        raise AssertionError("the swap should have refused the symlinked folder")
    assert (outside / "app.ini").read_text() == "outside\n"
    assert sorted(p.name for p in outside.iterdir()) == ["app.ini"]
    assert not list(target.glob(".strongbox-restore-*"))


def test_remove_new_files_leaves_special_files_a_snapshot_cannot_hold(
        repo: Repository, tmp_path: Path) -> None:
    """A FIFO (or socket) in a captured folder is never captured (the archiver skips
    what is not a file, folder or symlink), so "not held" does not mean "new": before the
    fix ``remove_new_files`` deleted it, and no snapshot could bring it back."""
    from strongbox.services.config_snapshots import remove_unheld
    from strongbox.sources.files.patterns import PathFilter

    root = tmp_path / "conf"
    root.mkdir()
    (root / "app.ini").write_text("x")
    os.mkfifo(root / "control.fifo")
    snapshot = backup_files(repo, [root])
    (root / "new.ini").write_text("new")
    held = {path for path, _node in repo.iter_tree(snapshot.tree)}
    assert "conf/control.fifo" not in held
    assert remove_unheld(root, held, PathFilter()) == 1
    assert sorted(p.name for p in root.iterdir()) == ["app.ini", "control.fifo"]


def test_a_rename_suffix_cannot_lead_outside_the_target(repo: Repository,
                                                        tmp_path: Path) -> None:
    """``target.project_name_suffix`` is glued into the renamed file's name. The backup
    has a file ``data`` where the target has a folder ``data``; with the suffix
    ``/../../escaped`` the "renamed" entry was ``data/../../escaped``: outside the
    target (the plan showed it, and the swap wrote it there)."""
    from strongbox.errors import StrongboxError
    from strongbox.services.restore import NewRestore

    source = tmp_path / "src"
    source.mkdir()
    (source / "data").write_text("restored")
    snapshot = backup_files(repo, [source])
    target = tmp_path / "root" / "target"
    (target / "data").mkdir(parents=True)
    spec = FileRestoreSpec(mode="merge", target=str(target), on_conflict="rename",
                           suffix="/../../escaped")
    for call in (lambda: file_restore.plan_file_restore(repo, snapshot, spec),
                 lambda: file_restore.restore_file_tree(repo, snapshot, spec, "job-suffix")):
        try:
            call()
        except StrongboxError as exc:
            assert exc.http_status == 400, exc
        else:
            raise AssertionError("a suffix with '/' must be refused")
    assert not (tmp_path / "root" / "escaped").exists()
    assert sorted(p.name for p in target.iterdir()) == ["data"]
    # And the request is refused up front, naming the field.
    from types import SimpleNamespace

    service = _restore_service(tmp_path / "data-dir", [tmp_path / "root"])
    try:
        service._file_spec(NewRestore(backup_id="x", mode="merge", on_conflict="rename",
                                      target_path=str(target), name_suffix="/../x"),
                           SimpleNamespace(config={"path": str(tmp_path / "root")}))
    except StrongboxError as exc:
        assert [e.field for e in exc.errors] == ["target.project_name_suffix"], exc  # type: ignore[attr-defined]
    else:
        raise AssertionError("the suffix must be refused")


def test_recovering_a_directory_that_is_gone(tmp_path: Path) -> None:
    """Disaster recovery of a file source whose directory was lost (the disaster): the
    pre-recovery backup of a missing directory cannot succeed, and before the fix the
    recovery answered 500 SNAPSHOT_FAILED -- only recoverable by knowing to send
    ``create_pre_recovery_snapshot: false``. Now it recovers, saying why nothing was
    kept first."""
    import shutil

    from tests.api.conftest import running_server
    from tests.api.test_disaster_recovery import BASE, backup_of, tree_path, wait_restore

    with running_server(tmp_path / "server") as server:
        backup_id = backup_of(server, "files", "before the disaster")
        root = tree_path(server)
        before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        shutil.rmtree(root)
        response = server.client.post(f"{BASE}/initiate", headers=server.headers("admin"),
                                       json={"backup_id": backup_id, "confirmation": True,
                                             "confirmation_text": f"RECOVER {backup_id}"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert any("missing" in w for w in body["warnings"]), body
        status = wait_restore(server, body["restore_job_id"])
        assert status["status"] == "completed", status
        assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before


def test_a_target_holding_the_repository_is_refused(tmp_path: Path) -> None:
    """The repository may lie outside the data directory (STRONGBOX_REPOSITORY). A full
    restore into a source folder that holds it moved the repository aside and deleted it
    (and with it the safety snapshot the restore had just written there); only the data
    directory was protected before the fix."""
    from types import SimpleNamespace

    srv = tmp_path / "srv"
    (srv / "backups" / "repo").mkdir(parents=True)
    service = _restore_service(tmp_path / "data", [])
    service.storage = SimpleNamespace(location=str(srv / "backups" / "repo"))
    assert _target_errors(service, srv, srv) == ["PROTECTED_PATH"]
    assert _target_errors(service, srv, srv / "backups" / "repo" / "x") == ["PROTECTED_PATH"]
    assert _target_errors(service, srv, srv / "www") == []


def test_two_snapshot_restores_of_the_same_source_at_once(tmp_path: Path) -> None:
    """Two snapshot restore requests arriving together (a double click, a retried call):
    the idle check and the new job were not taken together, so both passed the check
    and two jobs wrote into the same folder at once. Now the second answers
    RESTORE_IN_PROGRESS."""
    import threading

    from strongbox.services.config_snapshots import RestoreInProgress, SnapshotRestoreSpec
    from strongbox.services.principal import Principal, Role
    from tests.api.conftest import running_server
    from tests.api.test_config_snapshots import take, wait_restore

    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "app.ini").write_text("port=1\n")
    with running_server(tmp_path / "server") as server:
        snapshot = take(server, {"name": "app config", "paths": [str(folder)]})
        service = server.services.config_snapshots
        principal = Principal("k", "k", "default", Role.OPERATOR)
        spec = SnapshotRestoreSpec(create_backup=False)
        outcomes: list[object] = []

        def second() -> None:
            try:
                outcomes.append(service.restore(principal, snapshot["_id"], spec).job.id)
            except RestoreInProgress as exc:
                outcomes.append(exc)

        other = threading.Thread(target=second)
        real_check = service._check_idle

        def check_then_let_the_other_in(*args, **kwargs):  # type: ignore[no-untyped-def]
            real_check(*args, **kwargs)
            if not other.is_alive() and not outcomes:
                other.start()
                other.join(timeout=1.0)  # unlocked: it passes its check meanwhile

        service._check_idle = check_then_let_the_other_in  # type: ignore[method-assign]
        first = service.restore(principal, snapshot["_id"], spec)
        other.join()
        assert len(outcomes) == 1 and isinstance(outcomes[0], RestoreInProgress), outcomes
        final = wait_restore(server, first.job.id)
        assert final["status"] == "completed", final


def test_restoring_a_snapshot_of_a_folder_that_is_gone(tmp_path: Path) -> None:
    """The folder a snapshot captured was deleted -- the reason to restore it. Before the
    fix the pre-restore snapshot (a backup of the missing folder) failed, and with it the
    restore: SNAPSHOT_FAILED, "nothing was restored"."""
    import shutil

    from tests.api.conftest import running_server
    from tests.api.test_config_snapshots import restore, take

    folder = tmp_path / "conf"
    (folder / "conf.d").mkdir(parents=True)
    (folder / "conf.d" / "app.ini").write_text("port=1\n")
    with running_server(tmp_path / "server") as server:
        snapshot = take(server, {"name": "app config", "paths": [str(folder)]})
        shutil.rmtree(folder)
        _started, final = restore(server, snapshot["_id"])
        assert final["status"] == "completed"
        assert (folder / "conf.d" / "app.ini").read_text() == "port=1\n"
