"""kohya's buckets, the batch schedule, and parameter checks."""

from __future__ import annotations

import pytest

from sdfleet.engine.training.buckets import BatchSchedule, make_buckets, nearest_bucket, place
from sdfleet.engine.training.config import TrainingConfig, TrainingConfigError


def test_buckets_match_kohya():
    buckets = make_buckets(512, min_size=256, max_size=1024)
    # The values kohya sd-scripts prints for --resolution 512 --min_bucket_reso 256 --max_bucket_reso 1024.
    assert {(512, 512), (448, 576), (576, 448), (384, 640), (640, 384), (256, 1024), (1024, 256)} <= set(buckets)
    assert all(w * h <= 512 * 512 and w % 64 == 0 and h % 64 == 0 for w, h in buckets)
    assert nearest_bucket(1920, 1080, buckets) == (640, 384)  # 16:9 → the 5:3 bucket
    assert make_buckets(64, min_size=64, max_size=128) == [(64, 64)]


def test_place_covers_the_bucket_and_centres_the_crop():
    p = place(1000, 500, (640, 384))
    assert p.resized[0] >= 640 and p.resized[1] >= 384 and p.resized == (768, 384)
    assert p.crop == (0, 64)


def test_schedule_draws_each_repeat_once_per_epoch_and_never_mixes_buckets():
    buckets = [(64, 64), (64, 64), (128, 64), (64, 64)]
    schedule = BatchSchedule(buckets_of=buckets, repeats=[1, 3, 2, 1], batch_size=2, seed=5)
    epoch = schedule.epoch(0)
    assert sorted(i for batch in epoch for i in batch) == [0, 1, 1, 1, 2, 2, 3]
    assert all(len({buckets[i] for i in batch}) == 1 for batch in epoch)
    assert schedule.batches_per_epoch == len(epoch) == 4
    again = BatchSchedule(buckets_of=buckets, repeats=[1, 3, 2, 1], batch_size=2, seed=5)
    assert [again.batch(m) for m in range(9)] == [schedule.batch(m) for m in range(9)]
    assert schedule.epoch(1) != epoch or schedule.epoch(2) != epoch  # reshuffled per epoch


@pytest.mark.parametrize(("values", "field"), [
    ({"max_train_steps": 10, "epochs": 2}, "max_train_steps"),
    ({}, "max_train_steps"),
    ({"max_train_steps": 10, "network_rank": 0}, "network_rank"),
    ({"max_train_steps": 10, "resolution": 500}, "resolution"),
    ({"max_train_steps": 10, "optimizer": "Lion"}, "optimizer"),
    ({"max_train_steps": 10, "lr_scheduler": "cyclic"}, "lr_scheduler"),
    ({"max_train_steps": 10, "unet_lr": 2.0}, "unet_lr"),
    ({"max_train_steps": 10, "no_such": 1}, "no_such"),
])
def test_bad_parameters_name_the_field(values, field):
    with pytest.raises(TrainingConfigError) as caught:
        TrainingConfig.from_dict(values)
    assert caught.value.field == field


def test_config_round_trips_and_the_fingerprint_ignores_reporting_settings():
    config = TrainingConfig.from_dict({"max_train_steps": 5, "samples": {"prompts": ["a"], "steps": 4}})
    assert TrainingConfig.from_dict(config.to_dict()) == config
    other = TrainingConfig.from_dict({**config.to_dict(), "save_every_n_steps": 3, "sample_every_n_steps": 2})
    assert other.fingerprint() == config.fingerprint()
    assert TrainingConfig.from_dict({**config.to_dict(), "seed": 1}).fingerprint() != config.fingerprint()
