"""Contract tests of the per-user options table: the same cases on SQLite and PostgreSQL."""

from datetime import UTC, datetime

from sdfleet.domain.accounts import User
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.user_options import SqlUserOptions

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _user(db, user_id: str) -> str:
    with db.session() as s:
        AccountRepository(s).add_user(User(id=user_id, username=f"u{user_id[0]}", roles=()), password_hash="x",
                                      now=NOW)
    return user_id


def test_options_round_trip_per_user_and_none_removes(db):
    options = SqlUserOptions(db)
    alice, bob = _user(db, "a" * 32), _user(db, "b" * 32)
    options.put_many(alice, {"sd_model_checkpoint": "x.safetensors", "CLIP_stop_at_last_layers": 2}, now=NOW)
    options.put_many(bob, {"sd_vae": "None"}, now=NOW)
    assert options.get_all(alice) == {"sd_model_checkpoint": "x.safetensors", "CLIP_stop_at_last_layers": 2}
    assert options.get(bob, "sd_model_checkpoint") is None and options.get(bob, "sd_vae") == "None"
    options.put_many(alice, {"sd_model_checkpoint": None, "CLIP_stop_at_last_layers": 3}, now=NOW)
    assert options.get_all(alice) == {"CLIP_stop_at_last_layers": 3}
    options.delete_all(alice)
    assert options.get_all(alice) == {} and options.get_all(bob) == {"sd_vae": "None"}


def test_options_go_with_their_user(db):
    options = SqlUserOptions(db)
    alice = _user(db, "c" * 32)
    options.put_many(alice, {"sd_vae": "v.safetensors"}, now=NOW)
    with db.session() as s:
        AccountRepository(s).delete_user(alice)
    assert options.get_all(alice) == {}
