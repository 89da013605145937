"""`sdfleet datasets upload DIR`: kohya folders and sidecars from disk, resumable, orphans refused up front."""

from __future__ import annotations

import pytest
import typer
from fastapi.testclient import TestClient

from sdfleet.bootstrap import build_app
from sdfleet.cli_datasets import find_dataset, upload_folder
from sdfleet.cli_models import ApiClient
from tests.integration.datasets.images import colors


def _client(api, headers) -> ApiClient:
    client = ApiClient.__new__(ApiClient)
    client._http = TestClient(build_app(api.runtime, local_workers=0), base_url="http://testserver/api/v1",
                              headers=headers)
    return client


def test_folder_upload_reads_kohya_layout_and_resumes(api, tmp_path):
    me = api.make_user(roles=[api.make_role(permissions=["train:all"])])["headers"]
    client = _client(api, me)
    dataset = client.call("POST", "/datasets", json={"name": "dogs", "resolution": 64})
    a, b, c = colors(3)
    tmp_path = tmp_path / "set"
    (tmp_path / "10_sks dog").mkdir(parents=True)
    (tmp_path / "10_sks dog" / "1.png").write_bytes(a)
    (tmp_path / "10_sks dog" / "2.png").write_bytes(b)
    (tmp_path / "10_sks dog" / "2.txt").write_text("sks dog running\n")
    (tmp_path / "3.png").write_bytes(c)
    (tmp_path / ".hidden.png").write_bytes(b"ignored")
    assert upload_folder(client, dataset, tmp_path, repeats=2) == 3
    images = {i["filename"]: (i["caption"], i["repeats"])
              for i in client.call("GET", f"/datasets/{dataset['id']}/images")["items"]}
    assert images == {"10_sks dog/1.png": ("sks dog", 10), "10_sks dog/2.png": ("sks dog running", 10),
                      "3.png": ("", 2)}
    # A rerun uploads nothing again; name lookup finds it.
    assert upload_folder(client, dataset, tmp_path) == 0
    assert find_dataset(client, "dogs")["id"] == dataset["id"]
    # A caption without its image stops the upload before anything is sent.
    (tmp_path / "4.txt").write_text("orphan")
    with pytest.raises(typer.Exit):
        upload_folder(client, dataset, tmp_path)
    assert client.call("GET", f"/datasets/{dataset['id']}")["image_count"] == 3
