"""Reading what an answer says of the rate limit, under each platform's names for it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import responses

from platforms.base import OutboundRequest, RateLimitHeaders
from platforms.errors import MAX_WAIT_SECONDS, TransientPlatformError, parse_retry_after
from platforms.http import rate_limit_headers
from platforms.zendesk.client import ZendeskClient
from platforms.zendesk.settings import Settings

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_zendesk_account_headers():
    read = rate_limit_headers({"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "699"}, NOW)
    assert read == RateLimitHeaders(limit=700, remaining=699)


def test_the_ietf_names_zendesk_sends_for_an_endpoint_limit():
    read = rate_limit_headers(
        {"ratelimit-limit": "100", "ratelimit-remaining": "3", "ratelimit-reset": "17"}, NOW
    )
    assert read == RateLimitHeaders(limit=100, remaining=3, reset_seconds=17.0)


def test_jira_reset_is_an_instant_and_a_per_issue_reason_marks_the_ticket():
    read = rate_limit_headers(
        {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2026-11-30T09:00:30Z",
         "RateLimit-Reason": "jira-per-issue-on-write"},
        NOW,
    )  # fmt: skip
    assert read == RateLimitHeaders(limit=20, remaining=0, reset_seconds=30.0, per_ticket=True)


def test_servicenow_reset_is_a_unix_time():
    reset = int(NOW.timestamp()) + 1200
    read = rate_limit_headers({"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "12",
                               "X-RateLimit-Reset": str(reset)}, NOW)  # fmt: skip
    assert read == RateLimitHeaders(limit=5000, remaining=12, reset_seconds=1200.0)


def test_the_structured_ratelimit_header():
    assert rate_limit_headers({"RateLimit": "limit=100, remaining=9, reset=5"}, NOW) == RateLimitHeaders(
        limit=100, remaining=9, reset_seconds=5.0
    )
    assert rate_limit_headers({"RateLimit": '"default";r=4;t=12'}, NOW) == RateLimitHeaders(
        remaining=4, reset_seconds=12.0
    )


def test_no_rate_limit_headers_and_unreadable_ones_say_nothing():
    assert rate_limit_headers({"Content-Type": "application/json"}, NOW) is None
    assert rate_limit_headers({"X-Rate-Limit-Remaining": "lots"}, NOW) is None


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_numbers_that_are_not_finite_say_nothing(value):
    assert rate_limit_headers({"X-Rate-Limit-Remaining": value, "X-Rate-Limit": value}, NOW) is None
    assert rate_limit_headers({"RateLimit-Reset": value}, NOW) is None
    assert parse_retry_after(value) is None


def test_a_wait_is_read_within_zero_and_a_day():
    """A typo of a platform (or a hostile proxy) must not block every write, or overflow a datetime."""
    assert parse_retry_after("1e12") == MAX_WAIT_SECONDS
    assert parse_retry_after("-5") == 0.0
    assert rate_limit_headers({"RateLimit-Reset": "30000000"}, NOW).reset_seconds == MAX_WAIT_SECONDS
    assert (
        rate_limit_headers({"X-RateLimit-Reset": "9999-12-31T00:00:00Z"}, NOW).reset_seconds
        == MAX_WAIT_SECONDS
    )
    assert rate_limit_headers({"X-RateLimit-Reset": "2026-11-30T08:00:00Z"}, NOW).reset_seconds == 0.0


@responses.activate
def test_a_sent_request_carries_what_the_platform_said_of_its_limit():
    url = "https://acme.zendesk.com/api/v2/tickets/1.json"
    limit = {"ratelimit-limit": "100", "ratelimit-remaining": "41", "ratelimit-reset": "20"}
    responses.add(responses.PUT, url, json={"ticket": {"id": 1}}, headers=limit)
    client = ZendeskClient(Settings(url="https://acme.zendesk.com", email="bot@acme.test", api_token="t"))
    sent = client.send(OutboundRequest("PUT", url, {"ticket": {"priority": "urgent"}}))
    assert sent.limits == RateLimitHeaders(limit=100, remaining=41, reset_seconds=20.0)


@responses.activate
def test_a_429_carries_its_retry_after_and_the_limit_headers():
    url = "https://acme.zendesk.com/api/v2/tickets/1.json"
    limit = {"Retry-After": "37", "ratelimit-remaining": "0", "ratelimit-reset": "37"}
    responses.add(responses.PUT, url, status=429, json={"error": "APIRateLimitExceeded"}, headers=limit)
    client = ZendeskClient(Settings(url="https://acme.zendesk.com", email="bot@acme.test", api_token="t"))
    with pytest.raises(TransientPlatformError) as refused:
        client.send(OutboundRequest("PUT", url, {"ticket": {"priority": "urgent"}}))
    assert refused.value.retry_after == 37.0
    assert refused.value.limits == RateLimitHeaders(remaining=0, reset_seconds=37.0)


def test_an_answers_headers_read_alike_in_any_case():
    from requests.structures import CaseInsensitiveDict

    headers = {
        "x-ratelimit-LIMIT": "5000",
        "X-RateLimit-Remaining": "12",
        "RateLimit-Reason": "jira-per-issue-on-write",
    }
    assert rate_limit_headers(CaseInsensitiveDict(headers), NOW) == rate_limit_headers(headers, NOW)
    assert rate_limit_headers(CaseInsensitiveDict(headers), NOW).remaining == 12
