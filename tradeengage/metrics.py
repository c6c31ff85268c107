"""The product's Prometheus metrics (seed 000 "Metrics", README "Metrics"), counted where things
happen and exported at ``/metrics`` (``tradeengage.monitoring``).

Web and worker processes each count in their own memory, or, when ``PROMETHEUS_MULTIPROC_DIR``
names a folder (set before the process starts; ``make run`` and the gunicorn and Celery commands
in the README set it), in files there that ``/metrics`` adds up: prometheus_client's
multiprocess mode. A new feature adds its series here, named ``<what>_<unit>`` with ``_total``
for counters, labelled with bounded values only (never an id).
"""

from prometheus_client import Counter, Histogram

# Seconds; from a fast job creation to a slow provider call with its retries' waits.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

job_creation = Counter("job_creation", "Jobs created (committed), by any route.")
job_routing = Counter(
    "job_routing", "Routings created (committed), by how they were made.", ["source"]
)
sync_success = Counter("sync_success", "Routings pushed into a provider's system.", ["provider"])
sync_failure = Counter(
    "sync_failure",
    "Provider calls that did not sync a routing, by what came of them: retry (it will be "
    "tried again), failed (dead-lettered) or waiting (the provider is not configured).",
    ["provider", "reason"],
)
sync_latency = Histogram(
    "sync_latency_seconds",
    "From a routing's creation to its push into the provider's system.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
)
provider_call_duration = Histogram(
    "provider_call_duration_seconds",
    "Calls to create a job in a provider's system, by provider and outcome.",
    ["provider", "outcome"],
    buckets=LATENCY_BUCKETS,
)
sync_deferrals = Counter(
    "sync_deferrals",
    "Claimed routings handed back untried because their company had no free call slot in the "
    "worker process (SYNC_COMPANY_MAX_IN_FLIGHT): a slow company's backlog, not an error.",
)
api_request_duration = Histogram(
    "api_request_duration_seconds",
    "API requests, by route (the URL pattern, not the path), method and status.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
rate_limit_rejections = Counter(
    "rate_limit_rejections", "Requests we answered 429, by the limit that refused them.", ["policy"]
)
provider_errors = Counter(
    "provider_errors",
    "Provider calls that ended in an error, by provider and the error's class (rate_limited is a "
    "429 from the provider; timeout, service_unavailable, request_rejected, ...).",
    ["provider", "error"],
)
client_processing_runs = Counter(
    "client_processing_runs",
    "Client-processing runs (seed 004) that ended an attempt, by trigger (api, nightly, command, "
    "retry) and "
    "outcome: completed, retry (back in the retry queue) or failed (retries used up).",
    ["trigger", "outcome"],
)
nightly_run_clients = Counter(
    "nightly_run_clients",
    "Clients the nightly run found due, by what it did: enqueued, or already_run that night.",
    ["outcome"],
)
retry_queue_runs = Counter(
    "retry_queue_runs",
    "Due retries the client-processing retry queue ran, by outcome: completed or failed again.",
    ["outcome"],
)


def error_class(code: str) -> str:
    """A provider error's code ("Rate Limited") as a label value ("rate_limited")."""
    return "_".join(code.lower().split()) or "error"
