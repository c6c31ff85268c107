"""Rate limits (README "Rate limits"): by API key and its plan, job creation's own ceilings,
requests without a valid key by address, the headers on every counted response, and the 429 in
each contract. django-ratelimit's windows follow the clock, so the tests stop it (``clock``) and
move it on; the tests that take ``counters`` run once on local memory (the embedded default's
path, ``get_usage``) and once on Redis (the script) when ``REDIS_URL`` is set."""

import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.http import HttpRequest
from django.test.utils import CaptureQueriesContext
from django_ratelimit import core as ratelimit_core
from rest_framework.test import APIClient

from access import ratelimit
from access.authentication import caller_for_key
from access.models import ApiKey, Scope
from access.ratelimit import address_counter, client_address, rate_limit
from access.services import api_key_create, api_key_uses_record
from access.tasks import record_api_key_uses
from jobs.models import IngestionBatch, Plan
from jobs.tests.factories import CompanyFactory

pytestmark = pytest.mark.django_db

JOBS = "/api/v1/jobs/"
INGESTION = "/api/v1/ingestion/jobs"
REDIS_URL = os.environ.get("REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs Redis (set REDIS_URL)")
MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The time django-ratelimit's windows (and ours) are read from, stopped."""
    clock = Clock(1_800_000_000.25)
    monkeypatch.setattr(time, "time", clock)
    return clock


@pytest.fixture
def redis_cache(_private_cache, settings):
    """Django's cache on Redis, under a prefix of this test's own (its keys are deleted
    afterwards)."""
    prefix = f"ratelimit-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    yield
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def counters(request):
    """The cache holding the counters: the tests' local memory, or Redis."""
    if request.param == "redis":
        request.getfixturevalue("redis_cache")
    return request.param


def limits(settings, plan: str, **changes) -> None:
    settings.RATE_LIMIT_PLANS = {
        **settings.RATE_LIMIT_PLANS,
        plan: {**settings.RATE_LIMIT_PLANS[plan], **changes},
    }


def keyed_client(plan: str = Plan.FREE, company=None) -> tuple[APIClient, str]:
    """A client with a new key of a company on ``plan``, and the key's partition."""
    company = company or CompanyFactory(plan=plan)
    api_key, text = api_key_create(name="integrator", company_id=company.id)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=text)
    return client, f"key:{api_key.id}"


def reset_at(partition: str, window: int = 60) -> int:
    """When the window the stopped clock is in ends: the first second of the next one."""
    return ratelimit_core._get_window(partition, window) + 1


def seconds_to(moment: int, clock: Clock) -> int:
    return moment - int(clock.now)


def seconds(count: int) -> str:
    return f"{count} second" if count == 1 else f"{count} seconds"


def clear_of_the_hours_end(partition: str, clock: Clock, seconds: int) -> None:
    """Move the clock on, if need be, so that the key's hourly window does not end within the
    next ``seconds`` (windows are shifted by a hash of the key, which is random)."""
    if seconds_to(reset_at(partition, 3600), clock) <= seconds:
        clock.advance(seconds + 1)


def test_a_keys_responses_carry_its_limit_and_what_is_left(counters, clock):
    client, partition = keyed_client(Plan.FREE)
    reset = reset_at(partition)

    first = client.get(JOBS)
    second = client.get(JOBS)

    assert first.status_code == second.status_code == 200
    assert first["X-RateLimit-Limit"] == "60"
    assert first["X-RateLimit-Remaining"] == "59"
    assert first["X-RateLimit-Reset"] == str(reset)
    assert first["RateLimit-Policy"] == '"requests";q=60;w=60'
    assert first["RateLimit"] == f'"requests";r=59;t={seconds_to(reset, clock)}'
    assert second["X-RateLimit-Remaining"] == "58"
    assert second["RateLimit"] == f'"requests";r=58;t={seconds_to(reset, clock)}'


def test_error_responses_carry_the_headers_too(counters):
    client, _ = keyed_client(Plan.FREE)

    not_found = client.get(f"{JOBS}{uuid.uuid4()}")
    malformed = client.get(JOBS, {"limit": "many"})
    without_key = APIClient().get(JOBS)

    assert (not_found.status_code, not_found["X-RateLimit-Remaining"]) == (404, "59")
    assert (malformed.status_code, malformed["X-RateLimit-Remaining"]) == (422, "58")
    assert without_key.status_code == 401
    assert without_key["X-RateLimit-Limit"] == "100"
    assert without_key["RateLimit-Policy"] == '"ip";q=100;w=60'


def test_the_request_over_the_limit_is_429_with_retry_after(counters, clock, settings):
    limits(settings, Plan.FREE, requests_per_minute=3)
    client, partition = keyed_client(Plan.FREE)
    wait = seconds_to(reset_at(partition), clock)

    statuses = [client.get(JOBS).status_code for _ in range(3)]
    refused = client.get(JOBS)

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert refused["Retry-After"] == str(wait)
    assert (refused["X-RateLimit-Limit"], refused["X-RateLimit-Remaining"]) == ("3", "0")
    assert refused["RateLimit"] == f'"requests";r=0;t={wait}'
    body = refused.json()
    assert body["error_code"] == "RATE_LIMIT_EXCEEDED"
    assert body["retry_after"] == wait
    assert body["detail"] == (
        "Too many requests: the limit is 3 requests a minute for this API key. "
        f"Please retry after {seconds(wait)}."
    )


def test_requests_refused_for_a_missing_scope_count_against_the_key(counters, settings):
    limits(settings, Plan.FREE, requests_per_minute=2)
    company = CompanyFactory(plan=Plan.FREE)
    _, text = api_key_create(name="reader", company_id=company.id, scopes=[Scope.JOBS_READ])
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=text)

    refused = [client.post(JOBS, {}, format="json") for _ in range(3)]

    assert [r.status_code for r in refused] == [403, 403, 429]
    assert [r["X-RateLimit-Remaining"] for r in refused] == ["1", "0", "0"]
    assert refused[0]["RateLimit-Policy"] == '"requests";q=2;w=60'  # no job creation counted
    assert refused[2].json()["error_code"] == "RATE_LIMIT_EXCEEDED"
    assert client.get(JOBS).status_code == 429  # the same key's allowed requests wait too


def test_the_limit_resets_when_its_window_ends(counters, clock, settings):
    limits(settings, Plan.FREE, requests_per_minute=2)
    client, _ = keyed_client(Plan.FREE)
    client.get(JOBS)
    client.get(JOBS)
    wait = int(client.get(JOBS)["Retry-After"])

    clock.advance(wait - 1)
    still_refused = client.get(JOBS)
    clock.advance(1)
    allowed = client.get(JOBS)

    assert still_refused.status_code == 429
    assert still_refused["Retry-After"] == "1"
    assert allowed.status_code == 200
    assert allowed["X-RateLimit-Remaining"] == "1"


@pytest.mark.parametrize(
    ("plan", "per_minute"), [(Plan.FREE, "60"), (Plan.PRO, "300"), (Plan.ENTERPRISE, "1000")]
)
def test_each_plan_has_seed_003s_requests_a_minute(plan, per_minute):
    client, _ = keyed_client(plan)

    assert client.get(JOBS)["X-RateLimit-Limit"] == per_minute


def test_a_free_key_is_refused_where_an_enterprise_key_is_not(counters, settings):
    limits(settings, Plan.FREE, requests_per_minute=2)
    limits(settings, Plan.ENTERPRISE, requests_per_minute=4)
    free, _ = keyed_client(Plan.FREE)
    enterprise, _ = keyed_client(Plan.ENTERPRISE)

    assert [free.get(JOBS).status_code for _ in range(4)] == [200, 200, 429, 429]
    assert [enterprise.get(JOBS).status_code for _ in range(4)] == [200, 200, 200, 200]


def test_keys_of_one_company_have_a_budget_each(counters, settings):
    limits(settings, Plan.FREE, requests_per_minute=1)
    company = CompanyFactory(plan=Plan.FREE)
    first, _ = keyed_client(company=company)
    second, _ = keyed_client(company=company)

    assert first.get(JOBS).status_code == 200
    assert first.get(JOBS).status_code == 429
    assert second.get(JOBS).status_code == 200


def test_ops_keys_are_on_the_configured_plan(api_client, settings):
    assert api_client.get(JOBS)["X-RateLimit-Limit"] == "1000"

    settings.RATE_LIMIT_OPS_PLAN = Plan.PRO
    assert api_client.get(JOBS)["X-RateLimit-Limit"] == "300"


def test_the_benchmark_plan_lifts_every_key(settings):
    settings.RATE_LIMIT_PLAN_OVERRIDE = "benchmark"
    client, _ = keyed_client(Plan.FREE)

    assert client.get(JOBS)["X-RateLimit-Limit"] == "1000000"


def test_every_plan_has_limits():
    assert set(Plan.values) <= set(django_settings.RATE_LIMIT_PLANS)


def test_job_creation_has_its_own_ceiling_a_minute(
    counters, requesting_company, job_payload, clock
):
    client, partition = keyed_client(company=requesting_company)

    created = [client.post(JOBS, job_payload, format="json") for _ in range(10)]
    refused = client.post(JOBS, job_payload, format="json")
    listed = client.get(JOBS)

    assert [response.status_code for response in created] == [201] * 10
    assert created[0]["X-RateLimit-Limit"] == "10"
    assert created[0]["X-RateLimit-Remaining"] == "9"
    hourly_reset = reset_at(partition, 3600)
    reset = reset_at(partition)
    assert created[0]["RateLimit-Policy"] == (
        '"requests";q=60;w=60, "job-creation";q=10;w=60, "job-creation-hourly";q=1000;w=3600'
    )
    assert created[0]["RateLimit"] == (
        f'"requests";r=59;t={seconds_to(reset, clock)}, '
        f'"job-creation";r=9;t={seconds_to(reset, clock)}, '
        f'"job-creation-hourly";r=999;t={seconds_to(hourly_reset, clock)}'
    )
    assert refused.status_code == 429
    assert refused["X-RateLimit-Limit"] == "10"
    assert "10 job creations a minute" in refused.json()["detail"]
    assert listed.status_code == 200
    assert listed["X-RateLimit-Remaining"] == "49"  # 60 less 10 created and this one


def test_job_creation_has_a_ceiling_an_hour(
    counters, requesting_company, job_payload, clock, settings
):
    limits(settings, Plan.FREE, job_creations_per_hour=3)
    client, partition = keyed_client(company=requesting_company)
    clear_of_the_hours_end(partition, clock, 240)
    statuses = []
    for _ in range(3):
        statuses.append(client.post(JOBS, job_payload, format="json").status_code)
        clock.advance(60)
    refused = client.post(JOBS, job_payload, format="json")

    assert statuses == [201, 201, 201]
    assert refused.status_code == 429
    assert refused["X-RateLimit-Limit"] == "3"
    assert refused["Retry-After"] == str(seconds_to(reset_at(partition, 3600), clock))
    assert "3 job creations an hour" in refused.json()["detail"]


def test_a_refused_request_uses_up_none_of_its_limits(
    counters, requesting_company, job_payload, clock, settings
):
    limits(settings, Plan.FREE, job_creations_per_minute=1, job_creations_per_hour=3)
    client, partition = keyed_client(company=requesting_company)
    clear_of_the_hours_end(partition, clock, 120)

    assert client.post(JOBS, job_payload, format="json").status_code == 201
    refused = [client.post(JOBS, job_payload, format="json").status_code for _ in range(5)]
    clock.advance(seconds_to(reset_at(partition), clock))
    created = client.post(JOBS, job_payload, format="json")

    assert refused == [429] * 5
    assert created.status_code == 201
    assert '"job-creation-hourly";r=1;' in created["RateLimit"]
    assert '"requests";r=59;' in created["RateLimit"]  # a new minute: only this one


def ingestion_batch(job_payload, size: int, *, start: int = 0) -> dict:
    return {
        "source": "ratelimit",
        "jobs": [{**job_payload, "external_id": f"e{n}"} for n in range(start, start + size)],
    }


def test_each_job_of_a_batch_counts_against_the_jobs_ingested_an_hour(
    counters, requesting_company, job_payload, clock, settings
):
    limits(settings, Plan.FREE, ingested_jobs_per_hour=5)
    client, partition = keyed_client(company=requesting_company)
    clear_of_the_hours_end(partition, clock, 120)

    first = client.post(INGESTION, ingestion_batch(job_payload, 3), format="json")
    too_many = client.post(INGESTION, ingestion_batch(job_payload, 3, start=3), format="json")
    fits = client.post(INGESTION, ingestion_batch(job_payload, 2, start=3), format="json")

    assert first.status_code == 202
    assert '"ingested-jobs-hourly";q=5;w=3600' in first["RateLimit-Policy"]
    assert '"ingested-jobs-hourly";r=2;' in first["RateLimit"]
    assert '"requests";r=59;' in first["RateLimit"]  # the request itself counts once
    assert too_many.status_code == 429  # refused whole: 3 do not fit in the 2 left
    error = too_many.json()["error"]
    assert error["code"] == "RATE_LIMIT_EXCEEDED"
    assert "5 jobs ingested an hour" in error["message"] and "holds 3" in error["message"]
    assert error["retry_after"] == seconds_to(reset_at(partition, 3600), clock)
    assert fits.status_code == 202
    assert IngestionBatch.objects.count() == 2  # nothing stored for the refused batch


def test_invalid_jobs_of_a_batch_count_against_nothing_but_the_request(
    counters, requesting_company, job_payload, settings
):
    limits(settings, Plan.FREE, ingested_jobs_per_hour=1)
    client, _ = keyed_client(company=requesting_company)
    body = ingestion_batch(job_payload, 3)
    body["jobs"][1]["summary"] = ""
    body["jobs"][2]["summary"] = ""

    response = client.post(INGESTION, body, format="json")

    assert response.status_code == 202
    assert response.json()["data"]["jobs_queued"] == 1


def test_requests_without_a_valid_key_are_limited_per_address(counters, settings):
    settings.RATE_LIMIT_ANONYMOUS_PER_MINUTE = 3
    guesser = APIClient(REMOTE_ADDR="203.0.113.7")
    bad_keys = [{}, {"HTTP_X_API_KEY": "te_aaaaaaaa.bbbb"}, {"HTTP_X_API_KEY": "guess"}]

    statuses = [guesser.get(JOBS, **headers).status_code for headers in bad_keys]
    refused = guesser.get(JOBS, HTTP_X_API_KEY="te_cccccccc.dddd")
    elsewhere = APIClient(REMOTE_ADDR="203.0.113.8").get(JOBS)

    assert statuses == [401, 401, 401]
    assert refused.status_code == 429
    assert refused["RateLimit-Policy"] == '"ip";q=3;w=60'
    assert "without a valid API key from this address" in refused.json()["detail"]
    assert elsewhere.status_code == 401


def test_an_address_over_its_limit_is_refused_whatever_key_it_sends(counters, settings):
    settings.RATE_LIMIT_ANONYMOUS_PER_MINUTE = 2
    company = CompanyFactory(plan=Plan.FREE)
    credentials = {"HTTP_X_API_KEY": api_key_create(name="k", company_id=company.id)[1]}
    guesser = APIClient(REMOTE_ADDR="198.51.100.1")
    guesser.get(JOBS, HTTP_X_API_KEY="te_aaaaaaaa.bbbb")
    assert guesser.get(JOBS, **credentials).status_code == 200
    guesser.get(JOBS, HTTP_X_API_KEY="te_aaaaaaaa.cccc")

    guessed_right = guesser.get(JOBS, **credentials)
    from_elsewhere = APIClient(REMOTE_ADDR="198.51.100.2").get(JOBS, **credentials)

    assert guessed_right.status_code == 429
    assert guessed_right["X-RateLimit-Limit"] == "2"
    assert from_elsewhere.status_code == 200


def test_ipv6_addresses_share_their_64_prefix(settings):
    settings.RATE_LIMIT_ANONYMOUS_PER_MINUTE = 1

    APIClient(REMOTE_ADDR="2001:db8:1:2::1").get(JOBS)
    neighbour = APIClient(REMOTE_ADDR="2001:db8:1:2::ffff").get(JOBS)

    assert neighbour.status_code == 429


@pytest.mark.parametrize(
    "path",
    ["/api/v1/health", "/api/v1/health/live", "/api/v1/health/ready", "/api/health"],
)
def test_health_probes_are_not_limited(path, settings):
    settings.RATE_LIMIT_ANONYMOUS_PER_MINUTE = 1
    probe = APIClient()

    responses = [probe.get(path) for _ in range(3)]

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert "X-RateLimit-Limit" not in responses[-1]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            JOBS,
            lambda detail, wait: {
                "detail": detail,
                "error_code": "RATE_LIMIT_EXCEEDED",
                "retry_after": wait,
            },
        ),
        (
            "/api/integrations/servicetitan/jobs/1",
            lambda detail, wait: {
                "success": False,
                "error": "Rate Limit Exceeded",
                "message": detail,
                "details": [],
            },
        ),
        ("/api/job-status/1", lambda detail, wait: {"detail": detail}),
    ],
    ids=["v1", "servicetitan", "processing"],
)
def test_the_429_is_in_each_contracts_shape(path, body, settings, clock):
    settings.RATE_LIMIT_ANONYMOUS_PER_MINUTE = 1
    client = APIClient(REMOTE_ADDR="192.0.2.1")
    assert client.get(path).status_code == 401

    refused = client.get(path)

    wait = seconds_to(reset_at("ip:192.0.2.1"), clock)
    detail = (
        "Too many requests: the limit is 1 requests a minute without a valid API key from this "
        f"address. Please retry after {seconds(wait)}."
    )
    assert refused.status_code == 429
    assert refused["Retry-After"] == str(wait)
    assert refused["X-RateLimit-Remaining"] == "0"
    answered = refused.json()
    if path == JOBS:
        assert answered.pop("timestamp")
    assert answered == body(detail, wait)


def test_an_operator_key_of_client_processing_counts_as_operations(settings):
    settings.PROCESSING_API_KEYS = ["operator-key"]
    limits(settings, Plan.ENTERPRISE, requests_per_minute=1)
    operator = APIClient()
    operator.credentials(HTTP_X_API_KEY="operator-key")

    assert operator.get("/api/job-status/1").status_code == 404
    assert operator.get("/api/job-status/1").status_code == 429


def test_without_rate_limits_nothing_is_counted(settings):
    settings.RATELIMIT_ENABLE = False
    settings.RATE_LIMIT_ANONYMOUS_PER_MINUTE = 1
    anonymous = APIClient()

    responses = [anonymous.get(JOBS) for _ in range(3)]

    assert [response.status_code for response in responses] == [401, 401, 401]
    assert "X-RateLimit-Limit" not in responses[-1]


def test_requests_pass_unlimited_when_redis_is_down(settings, caplog):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    client, _ = keyed_client(Plan.FREE)
    ratelimit._redis_failed_log.reset()

    responses = [client.get(JOBS) for _ in range(3)]

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert "X-RateLimit-Limit" not in responses[-1]
    assert caplog.text.count("Rate limits not checked, Redis failed") == 1  # not one per request


def test_the_key_and_its_companys_plan_are_read_in_one_query(django_assert_num_queries):
    company = CompanyFactory(plan=Plan.PRO)
    _, text = api_key_create(name="integrator", company_id=company.id)
    caller_for_key(text)  # records the key's first use

    with django_assert_num_queries(1):
        caller = caller_for_key(text)

    assert caller.plan == Plan.PRO


@needs_redis
def test_a_request_costs_one_redis_round_trip(
    redis_cache, requesting_company, job_payload, monkeypatch
):
    client, _ = keyed_client(company=requesting_company)
    client.get(JOBS)  # loads the script into Redis
    commands = []
    execute_command = redis.Redis.execute_command

    def counted(self, *args, **options):
        commands.append(args[0])
        return execute_command(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)
    client.get(JOBS)
    listing = list(commands)
    commands.clear()
    APIClient().get(JOBS)
    anonymous = list(commands)
    commands.clear()
    client.post(JOBS, job_payload, format="json")
    creation = [command for command in commands if command == "EVALSHA"]

    assert listing == ["EVALSHA"]
    assert anonymous == ["EVALSHA"]
    assert creation == ["EVALSHA"]  # three windows and the address, in one script


@needs_redis
def test_on_redis_a_keys_use_is_noted_in_the_count_and_written_by_beat(redis_cache, clock):
    client, partition = keyed_client()
    api_key = ApiKey.objects.get(id=partition.removeprefix("key:"))

    with CaptureQueriesContext(connection) as queries:
        assert client.get(JOBS).status_code == 200
    assert not [q for q in queries if q["sql"].startswith("UPDATE")]
    assert ApiKey.objects.get(id=api_key.id).last_used_at is None

    clock.advance(30)
    client.get(JOBS)
    assert record_api_key_uses() == 1
    assert ApiKey.objects.get(id=api_key.id).last_used_at == datetime.fromtimestamp(
        clock.now, tz=UTC
    )
    assert record_api_key_uses() == 0  # taken: nothing new since


@needs_redis
def test_a_use_noted_before_the_one_written_does_not_move_it_back(redis_cache, clock):
    client, partition = keyed_client()
    client.get(JOBS)
    later = datetime.fromtimestamp(clock.now + 60, tz=UTC)
    ApiKey.objects.filter(id=partition.removeprefix("key:")).update(last_used_at=later)

    assert api_key_uses_record() == 0
    assert ApiKey.objects.get().last_used_at == later


def test_without_redis_authentication_writes_the_last_use_and_beat_has_nothing():
    client, _ = keyed_client()  # the tests' cache is local memory unless they ask for Redis

    client.get(JOBS)

    assert ApiKey.objects.get().last_used_at is not None
    assert api_key_uses_record() == 0


CHILD = """
import os, time
now = float(os.environ["RATE_LIMIT_TEST_NOW"])
time.time = lambda: now
from django.test import Client
client = Client(REMOTE_ADDR=os.environ["RATE_LIMIT_TEST_ADDRESS"])
print(" ".join(str(client.get("/api/v1/jobs/").status_code) for _ in range(20)))
"""


@needs_redis
def test_two_web_processes_draw_on_one_budget():
    """Two processes, each its own Django and Redis connections, send 20 requests without a key
    from one address side by side: 25 of the 40 are answered (401), the rest refused (429)."""
    environment = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "RATE_LIMIT_ANONYMOUS_PER_MINUTE": "25",
        "RATE_LIMIT_TEST_NOW": str(time.time()),
        "RATE_LIMIT_TEST_ADDRESS": "10.{}.{}.{}".format(*random.sample(range(1, 255), 3)),
        "LOG_LEVEL": "WARNING",
    }
    processes = [
        subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "shell", "-c", CHILD],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    statuses = [status for stdout, _ in outputs for status in stdout.splitlines()[-1].split()]
    assert len(statuses) == 40
    assert statuses.count("401") == 25
    assert statuses.count("429") == 15


@needs_redis
def test_the_script_counts_what_django_ratelimit_reads(redis_cache, rf):
    request = rf.get(JOBS, REMOTE_ADDR="192.0.2.9")
    counter = address_counter(request)

    rate_limit(request, [counter])
    rate_limit(request, [counter])
    usage = ratelimit_core.get_usage(
        request, group="ip", key=lambda group, request: counter.partition, rate=(100, 60)
    )

    assert usage["count"] == 2


def test_a_request_with_an_empty_client_address_is_counted_not_a_500(db):
    """An app server behind a proxy on a Unix socket sees an empty REMOTE_ADDR."""
    response = APIClient().get("/api/v1/jobs/", REMOTE_ADDR="")

    assert response.status_code == 401
    assert "X-RateLimit-Limit" in response


def test_a_request_without_a_client_address_shares_the_unknown_address():
    request = HttpRequest()

    assert client_address(request) == "0.0.0.0"
    request.META["REMOTE_ADDR"] = "203.0.113.7"
    assert client_address(request) == "203.0.113.7"
