"""An input image deleted after queueing fails the job at once, naming the node (no retries)."""

import io

import httpx
from PIL import Image


def test_job_whose_input_image_vanished_fails_naming_the_node(fleet):
    admin = fleet.login()
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "green").save(buf, format="PNG")
    name = httpx.post(f"{fleet.url}/api/v1/inputs", headers=admin,
                      files={"image": ("g.png", buf.getvalue(), "image/png")}).json()["name"]
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    job_id = httpx.post(f"{fleet.url}/api/v1/inferences", headers=admin, json={"graph": graph}).json()["id"]
    objects = fleet.server.runtime.objects
    for info in list(objects.list("inputs/")):
        objects.delete(info.key)
    fleet.start_worker("w")
    job = fleet.wait(admin, job_id, timeout=60)
    assert job["status"] == "failed" and job["attempts"] == 1, job
    assert job["error"]["code"] == "input_missing" and job["error"]["node_id"] == "1"
    assert name in job["error"]["message"]
