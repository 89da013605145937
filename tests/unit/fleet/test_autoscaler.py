"""The autoscaler's arithmetic and its idle delay."""

from sdfleet.domain.endpoints import EndpointConfig
from sdfleet.fleet.autoscaler import Autoscaler, Load, wanted_replicas

POLICY = EndpointConfig(min_replicas=0, max_replicas=3, target_queue_per_replica=2, idle_seconds=10)


def test_wanted_is_clamped_ceiling_of_work_per_target():
    assert [wanted_replicas(POLICY, Load(q, 0)) for q in range(9)] == [0, 1, 1, 2, 2, 3, 3, 3, 3]
    assert wanted_replicas(POLICY, Load(queued=1, running=2)) == 2  # running jobs keep their replicas
    floor = EndpointConfig(min_replicas=2, max_replicas=4, target_queue_per_replica=1)
    assert wanted_replicas(floor, Load(0, 0)) == 2


def test_scales_up_at_once_and_down_only_after_idle_seconds():
    scaler = Autoscaler()
    assert scaler.decide("e", config=POLICY, load=Load(1, 0), current=0, now=0.0).desired == 1  # from zero at once
    assert scaler.decide("e", config=POLICY, load=Load(5, 0), current=1, now=1.0).desired == 3
    waiting = scaler.decide("e", config=POLICY, load=Load(0, 0), current=3, now=2.0)
    assert (waiting.desired, waiting.wanted) == (3, 0) and "idle" in waiting.reason
    assert scaler.decide("e", config=POLICY, load=Load(0, 0), current=3, now=11.9).desired == 3
    # Work in between restarts the idle clock.
    assert scaler.decide("e", config=POLICY, load=Load(6, 0), current=3, now=11.95).desired == 3
    assert scaler.decide("e", config=POLICY, load=Load(0, 0), current=3, now=12.0).desired == 3
    assert scaler.decide("e", config=POLICY, load=Load(0, 0), current=3, now=21.9).desired == 3
    done = scaler.decide("e", config=POLICY, load=Load(0, 0), current=3, now=22.0)
    assert done.desired == 0 and done.reason.startswith("scale to zero")


def test_lowered_max_scales_down_without_waiting():
    scaler = Autoscaler()
    lowered = EndpointConfig(min_replicas=0, max_replicas=1, target_queue_per_replica=1, idle_seconds=600)
    assert scaler.decide("e", config=lowered, load=Load(9, 0), current=3, now=0.0).desired == 1


def test_endpoints_keep_separate_clocks():
    scaler = Autoscaler()
    scaler.decide("a", config=POLICY, load=Load(0, 0), current=1, now=0.0)
    assert scaler.decide("b", config=POLICY, load=Load(0, 0), current=1, now=10.0).desired == 1
    assert scaler.decide("a", config=POLICY, load=Load(0, 0), current=1, now=10.0).desired == 0
