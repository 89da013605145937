"""The login limiter's rules on the in-memory failure store with a controlled clock."""

from datetime import UTC, datetime, timedelta

import pytest

from sdfleet.domain.errors import RateLimited
from sdfleet.services.login_limiter import LoginLimiter, LoginLimits
from sdfleet.store.login_failures import MemoryLoginFailures

WINDOW = timedelta(minutes=5)


@pytest.fixture
def clock():
    now = [datetime(2026, 1, 1, tzinfo=UTC)]

    class Clock:
        def __call__(self):
            return now[0]

        def advance(self, seconds: float) -> None:
            now[0] += timedelta(seconds=seconds)

    return Clock()


def _limiter(clock, *, per_client=3, per_address=5, per_user=4) -> LoginLimiter:
    return LoginLimiter(store=MemoryLoginFailures(), clock=clock,
                        limits=LoginLimits(per_client=per_client, per_address=per_address, per_user=per_user,
                                           window=WINDOW))


def _allowed(limiter, username, address) -> bool:
    try:
        limiter.check(username=username, address=address)
    except RateLimited:
        return False
    return True


def test_pair_limit_holds_that_client_only_until_the_window_passes(clock):
    limiter = _limiter(clock)
    for _ in range(3):
        assert _allowed(limiter, "Ann", "a1")
        limiter.failed(username="Ann", address="a1")
        clock.advance(1)
    with pytest.raises(RateLimited) as refused:
        limiter.check(username="ann", address="a1")  # usernames compare case-insensitively
    assert 0 < refused.value.retry_after <= WINDOW.total_seconds()
    assert _allowed(limiter, "ann", "a2")  # the owner elsewhere is not held back
    clock.advance(WINDOW.total_seconds())
    assert _allowed(limiter, "ann", "a1")


def test_success_clears_the_pair_and_never_counts(clock):
    limiter = _limiter(clock, per_address=2)
    for _ in range(100):
        limiter.succeeded(username="ann", address="office")
    assert _allowed(limiter, "ann", "office")
    limiter.failed(username="ann", address="office")
    limiter.succeeded(username="ann", address="office")
    limiter.failed(username="ann", address="office")
    assert _allowed(limiter, "ann", "office")


def test_address_limit_stops_spraying_across_usernames(clock):
    limiter = _limiter(clock, per_address=5)
    for i in range(5):
        limiter.failed(username=f"user{i}", address="sprayer")
    assert not _allowed(limiter, "someone-else", "sprayer")
    assert _allowed(limiter, "someone-else", "elsewhere")


def test_username_backoff_holds_failing_clients_not_a_clean_one(clock):
    limiter = _limiter(clock, per_client=10, per_user=4)
    for i in range(5):  # five guessing addresses, one failure each: five failures of "ann" in all
        limiter.failed(username="ann", address=f"bot{i}")
    assert not _allowed(limiter, "ann", "bot0")  # 2^(5-4) = 2 s after the latest failure
    assert _allowed(limiter, "ann", "owner-laptop")
    clock.advance(2)
    assert _allowed(limiter, "ann", "bot0")
    for i in range(5, 9):
        limiter.failed(username="ann", address=f"bot{i}")
    clock.advance(15)
    assert not _allowed(limiter, "ann", "bot0")  # nine failures: 2^5 = 32 s now
    clock.advance(17)
    assert _allowed(limiter, "ann", "bot0")


def test_backoff_never_exceeds_the_window(clock):
    limiter = _limiter(clock, per_client=1000, per_address=1000, per_user=1)
    for _ in range(60):
        limiter.failed(username="ann", address="bot")
    with pytest.raises(RateLimited) as refused:
        limiter.check(username="ann", address="bot")
    assert refused.value.retry_after <= WINDOW.total_seconds()
