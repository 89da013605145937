"""Contract tests of the registry's stores (SqlCheckpoints, SqlUploads, SqlImports, SqlDatasets): each method is one
transaction, so a change, its audit event and the step run with it commit together, and a check or step that
refuses inside the transaction leaves nothing written. SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest

from sdfleet.domain.accounts import User
from sdfleet.domain.audit import AuditAction, AuditEvent, AuditQuery, AuditTarget
from sdfleet.domain.checkpoints import (
    Checkpoint,
    CheckpointStatus,
    ImportJob,
    ImportStatus,
    ModelType,
    Upload,
    UploadPart,
    UploadStatus,
)
from sdfleet.domain.datasets import Dataset, DatasetImage, content_hash
from sdfleet.domain.errors import Conflict
from sdfleet.domain.pagination import PageRequest
from sdfleet.store.accounts import SqlAccounts
from sdfleet.store.audit import SqlAuditLog
from sdfleet.store.checkpoints import SqlCheckpoints, SqlUploads
from sdfleet.store.datasets import DuplicateImage, SqlDatasets
from sdfleet.store.imports import ImportLeaseLost, SqlImports

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _checkpoint(cid: str, name: str, sha: str = "a" * 64) -> Checkpoint:
    return Checkpoint(id=cid, name=name, model_type=ModelType.LORA, sha256=sha, short_hash=sha[:10],
                      architecture="sd15", layout="kohya", precision="fp16", size=10, format="safetensors",
                      tensor_count=1, status=CheckpointStatus.ACTIVE, allowed_roles=("*",), created_by="u1",
                      created_at=NOW, updated_at=NOW)


def _event(action: AuditAction, target: str) -> AuditEvent:
    return AuditEvent(id=f"e-{target}-{action.value}", at=NOW, action=action, target=AuditTarget("model", target, target),
                      actor_id=None, actor_name=None, credential=None, address=None, changes={}, details={})


def _actions(db) -> list[str]:
    page = SqlAuditLog(db).list(AuditQuery(), PageRequest.parse(cursor=None, limit=100))
    return sorted(e.action.value for e in page.items)


@pytest.fixture
def owner(db) -> User:
    return SqlAccounts(db).add_user(User(id="u1", username="ann", roles=()), password_hash="h", now=NOW,
                                    check=lambda roles: None, audit=lambda u: None)


def _refuse(*_args) -> None:
    raise Conflict("no")


def test_a_checkpoint_its_event_and_its_step_commit_together(db, owner):
    store = SqlCheckpoints(db)
    seen = {}

    def audit(added, reads):
        seen["owner"] = reads.user("u1").username
        return _event(AuditAction.MODEL_CREATE, added.id)

    added = store.add(_checkpoint("c1", "a.safetensors"), check=lambda reads: None, audit=audit,
                      within=lambda s, c: seen.setdefault("within", c.id))
    assert added.id == "c1" and seen == {"owner": "ann", "within": "c1"}
    assert _actions(db) == ["model.create"]
    # a check seeing the name taken, or a step refusing, writes neither the checkpoint nor its event
    with pytest.raises(Conflict):
        store.add(_checkpoint("c2", "a.safetensors"), audit=lambda c, r: _event(AuditAction.MODEL_CREATE, c.id),
                  check=lambda reads: _refuse() if reads.find_by_name("Lora", "a.safetensors", roles=None) else None)
    with pytest.raises(Conflict):
        store.add(_checkpoint("c3", "b.safetensors"), check=lambda reads: None,
                  audit=lambda c, r: _event(AuditAction.MODEL_CREATE, c.id), within=_refuse)
    assert store.get("c2") is None and store.get("c3") is None and store.count() == 1
    assert _actions(db) == ["model.create"]


def test_rename_and_delete_with_their_events(db, owner):
    store = SqlCheckpoints(db)
    first = store.add(_checkpoint("c1", "a.safetensors"), check=lambda r: None, audit=lambda c, r: None)
    store.add(_checkpoint("c2", "b.safetensors"), check=lambda r: None, audit=lambda c, r: None)
    with pytest.raises(Conflict):
        store.update(first, name="c.safetensors", allowed_roles=None, now=NOW, check_name=_refuse,
                     audit=lambda after: [_event(AuditAction.MODEL_RENAME, after.id)])
    assert store.get("c1").name == "a.safetensors" and _actions(db) == []
    renamed = store.update(first, name="c.safetensors", allowed_roles=None, now=NOW, check_name=lambda r: None,
                           audit=lambda after: [_event(AuditAction.MODEL_RENAME, after.id), None])
    assert renamed.name == "c.safetensors" and _actions(db) == ["model.rename"]
    # the file stays while another checkpoint has it
    assert store.delete(renamed, event=_event(AuditAction.MODEL_DELETE, "c1")) is False
    assert store.delete(store.get("c2"), event=None) is True
    assert store.count() == 0 and _actions(db) == ["model.delete", "model.rename"]


def test_a_part_is_recorded_only_while_the_upload_is_open(db, owner):
    store = SqlUploads(db)
    store.add(Upload(id="up1", user_id="u1", filename="a.safetensors", name="a.safetensors",
                     model_type=ModelType.LORA, size=20, part_size=10, declared_sha256=None, allowed_roles=("*",),
                     status=UploadStatus.OPEN, object_key="uploads/up1/file", store_upload_id="s", created_at=NOW,
                     expires_at=NOW + timedelta(hours=1)))
    part = UploadPart(part_number=1, size=10, sha256="b" * 64, etag="e1")
    assert store.put_part("up1", part).status is UploadStatus.OPEN
    assert store.get("up1").parts == (part,)
    assert store.set_status("up1", UploadStatus.COMPLETING, expect=UploadStatus.OPEN)
    assert not store.set_status("up1", UploadStatus.COMPLETING, expect=UploadStatus.OPEN)
    late = UploadPart(part_number=2, size=10, sha256="c" * 64, etag="e2")
    assert store.put_part("up1", late).status is UploadStatus.COMPLETING
    assert store.get("up1").parts == (part,)
    assert store.put_part("gone", late) is None
    assert store.expired(NOW + timedelta(hours=2)) == []


def test_an_import_finishes_in_the_checkpoints_transaction_only_while_its_lease_holds(db, owner):
    imports, checkpoints = SqlImports(db), SqlCheckpoints(db)
    job = ImportJob(id="imp1", user_id="u1", url="https://example.com/a.safetensors", model_type=ModelType.LORA,
                    name=None, allowed_roles=("*",), status=ImportStatus.QUEUED, bytes_done=0, bytes_total=None,
                    created_at=NOW, updated_at=NOW)
    lease = imports.add(job, owner="a", lease_until=NOW + timedelta(seconds=30))
    taken = imports.claim_expired(owner="b", now=NOW + timedelta(seconds=31), lease_seconds=30, limit=1,
                                  max_attempts=3, exhausted_reason="x")
    assert [t.token for t in taken] == [lease.token + 1]
    with pytest.raises(ImportLeaseLost):  # the old holder adds nothing
        checkpoints.add(_checkpoint("c1", "a.safetensors"), check=lambda r: None, audit=lambda c, r: None,
                        within=SqlImports.succeeding("imp1", token=lease.token, clock=lambda: NOW))
    assert checkpoints.count() == 0
    checkpoints.add(_checkpoint("c1", "a.safetensors"), check=lambda r: None, audit=lambda c, r: None,
                    within=SqlImports.succeeding("imp1", token=taken[0].token, clock=lambda: NOW))
    done = imports.get("imp1")
    assert done.status is ImportStatus.SUCCEEDED and done.checkpoint_id == "c1"


def test_dataset_names_and_images(db, owner):
    store = SqlDatasets(db)

    def dataset(did: str, name: str) -> Dataset:
        return Dataset(id=did, name=name, user_id="u1", description="", resolution=512, allowed_roles=(),
                       image_count=0, total_bytes=0, content_hash=content_hash([]), created_at=NOW, updated_at=NOW)

    def image(iid: str, sha: str) -> DatasetImage:
        return DatasetImage(id=iid, dataset_id="d1", sha256=sha, filename=f"{iid}.png", caption="", repeats=1,
                            width=8, height=8, size=5, format="PNG", created_at=NOW)

    assert store.add(dataset("d1", "dogs")) is not None
    assert store.add(dataset("d2", "dogs")) is None
    store.add(dataset("d2", "cats"))
    assert store.update("d2", name="dogs", description=None, allowed_roles=None, now=NOW) is None
    assert store.update("d1", name="dogs", description="mine", allowed_roles=None, now=NOW).description == "mine"
    assert store.add_images("d1", [image("i1", "1" * 64)], now=NOW, check_count=lambda n: None)
    with pytest.raises(Conflict):  # the count check refuses: nothing written
        store.add_images("d1", [image("i2", "2" * 64)], now=NOW, check_count=_refuse)
    with pytest.raises(DuplicateImage):
        store.add_images("d1", [image("i3", "1" * 64)], now=NOW, check_count=lambda n: None)
    assert not store.add_images("nope", [], now=NOW, check_count=lambda n: None)
    assert store.image_sha256s("d1") == {"1" * 64} and store.get("d1").image_count == 1
