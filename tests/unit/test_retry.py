"""Retry decisions: statuses, Retry-After, backoff bounds."""

from __future__ import annotations

import email.utils

from clusterimage.retry import RetryPolicy, is_retryable_status, parse_retry_after


def test_retryable_statuses() -> None:
    for status in (408, 429, 500, 502, 503, 504):
        assert is_retryable_status(status)
    for status in (200, 400, 401, 403, 404, 413, 416, 501, 505):
        assert not is_retryable_status(status)


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("100000") == 60.0  # capped
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert parse_retry_after(date, now=now) == 7.0
    past = email.utils.formatdate(now - 50, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_backoff_grows_with_jitter_and_cap() -> None:
    policy = RetryPolicy(retries=5, base_delay=0.5, max_delay=4.0)
    for attempt, ceiling in ((0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)):
        for _ in range(20):
            delay = policy.delay(attempt)
            assert ceiling / 2 <= delay <= ceiling
    assert policy.delay(3, retry_after=1.5) == 1.5


def test_a_retry_after_is_bounded() -> None:
    # TransferInterrupted may carry any retry_after: a huge or negative one must not stall.
    policy = RetryPolicy()
    assert policy.delay(0, retry_after=3600.0) == 60.0
    assert policy.delay(0, retry_after=-5.0) == 0.0


def test_retry_after_with_a_non_ascii_digit_is_unreadable_not_a_crash() -> None:
    # "²" is str.isdigit() but not int(): a header decoded as latin-1 can carry it.
    assert parse_retry_after("\u00b2") is None
    assert parse_retry_after("\u0663") is None  # ARABIC-INDIC DIGIT THREE is not HTTP's digit
