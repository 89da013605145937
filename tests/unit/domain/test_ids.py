import time

from sdfleet.domain.ids import new_id


def test_ids_are_unique_and_time_ordered():
    first = new_id()
    time.sleep(0.002)
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 26 for i in ids)
    assert min(ids) > first
