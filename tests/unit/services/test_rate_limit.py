from sdfleet.services.rate_limit import SlidingWindowLimiter


def test_window_blocks_then_releases():
    now = [100.0]
    limiter = SlidingWindowLimiter(limit=2, window_seconds=10, clock=lambda: now[0])
    limiter.record("k")
    limiter.record("k")
    assert limiter.retry_after("k") == 10
    assert limiter.retry_after("other") == 0
    now[0] += 4
    assert limiter.retry_after("k") == 6
    now[0] += 6.01
    assert limiter.retry_after("k") == 0


def test_reset_forgets_key():
    limiter = SlidingWindowLimiter(limit=1, window_seconds=60)
    limiter.record("k")
    assert limiter.retry_after("k") > 0
    limiter.reset("k")
    assert limiter.retry_after("k") == 0
