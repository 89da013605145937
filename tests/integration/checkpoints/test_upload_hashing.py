"""The whole-file sha256 of an upload is kept while parts arrive in order; otherwise completion hashes the file."""

import hashlib

import pytest

from sdfleet.services.model_intake import ModelIntake
from tests.integration.checkpoints.conftest import create_upload, send_parts
from tests.integration.checkpoints.model_bytes import sized_lora_bytes


@pytest.fixture
def known_hashes(monkeypatch) -> list:
    """The `sha256` each inspect_object call was given (None: it hashed the file itself)."""
    seen: list = []
    original = ModelIntake.inspect_object

    def spy(self, key, *, declared, sha256=None):
        seen.append(sha256)
        return original(self, key, declared=declared, sha256=sha256)

    monkeypatch.setattr(ModelIntake, "inspect_object", spy)
    return seen


def _complete(api, admin, upload, **body):
    return api.client.post(f"/api/v1/checkpoints/uploads/{upload['upload_id']}/complete", headers=admin, json=body)


def test_parts_in_order_are_hashed_on_the_way_in(api, admin, known_hashes):
    data = sized_lora_bytes(11)  # three 5 MiB parts
    upload = create_upload(api, admin, data)
    send_parts(api, admin, upload, data, only=[1, 2, 3])
    r = _complete(api, admin, upload, sha256=hashlib.sha256(data).hexdigest())
    assert r.status_code == 200, r.text
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert known_hashes == [hashlib.sha256(data).hexdigest()]


def test_parts_out_of_order_fall_back_to_a_full_pass(api, admin, known_hashes):
    data = sized_lora_bytes(11)
    upload = create_upload(api, admin, data)
    send_parts(api, admin, upload, data, only=[2, 1, 3])
    r = _complete(api, admin, upload)
    assert r.status_code == 200, r.text
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert known_hashes == [None]


def test_a_wrong_declared_sha256_is_still_refused_on_the_fast_path(api, admin, known_hashes):
    data = sized_lora_bytes(11)
    upload = create_upload(api, admin, data)
    send_parts(api, admin, upload, data, only=[1, 2, 3])
    r = _complete(api, admin, upload, sha256="0" * 64)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"]["reason"] == "hash_mismatch"
    assert known_hashes == [hashlib.sha256(data).hexdigest()]
