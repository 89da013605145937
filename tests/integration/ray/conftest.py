"""A local Ray cluster for the Ray launcher's tests: a head and a second node with a custom resource.

Kept small for the shared 2-core CI box: logical CPUs only (nothing is reserved), no dashboard, 80 MB object
stores, a temporary directory removed at the end. Started once per session (about 30 s on that box)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

#: the custom resource only the second node has (as Ray's autoscaler labels GPU types)
CUSTOM = "accelerator_type:T4"
OBJECT_STORE = 80 * 1024 * 1024


@dataclass
class RayCluster:
    address: str
    head_node_id: str
    custom_node_id: str  #: the node that has CUSTOM


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    ray = pytest.importorskip("ray", reason="ray is not installed: the Ray launcher's tests need a local Ray "
                                            "cluster (pip install 'sdfleet[ray]'; `make test` installs it)")
    from ray.cluster_utils import Cluster

    # Unix socket paths are limited to 107 bytes: a short directory of our own, not pytest's tmp_path.
    temp = tempfile.mkdtemp(prefix="sdray-")
    os.makedirs(os.path.join(temp, "ray"))
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp  # Ray writes its current-cluster file under $RAY_TMPDIR/ray
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "include_dashboard": False, "object_store_memory": OBJECT_STORE,
        "temp_dir": os.path.join(temp, "ray")})
    try:
        custom = cluster.add_node(num_cpus=2, resources={CUSTOM: 2}, object_store_memory=OBJECT_STORE)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace="sdfleet-tests", log_to_driver=False)
        yield RayCluster(address=cluster.address, head_node_id=cluster.head_node.node_id,
                         custom_node_id=custom.node_id)
    finally:
        ray.shutdown()
        cluster.shutdown()
        if previous is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = previous
        shutil.rmtree(temp, ignore_errors=True)


def named_actors(namespace: str) -> dict[str, object]:
    """The live named actors of a namespace: name → handle."""
    import ray

    handles = {}
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == namespace:
            try:
                handles[entry["name"]] = ray.get_actor(entry["name"], namespace=namespace)
            except ValueError:  # died in between
                pass
    return handles


def kill_namespace(namespace: str) -> None:
    """Leave no actor of a test behind (its replicas are detached: they outlive the server)."""
    import ray

    for handle in named_actors(namespace).values():
        ray.kill(handle, no_restart=True)
