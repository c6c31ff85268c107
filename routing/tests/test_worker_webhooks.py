"""Outbound webhooks with real Celery workers, Redis and PostgreSQL: a job created over HTTP
is told to live local receivers by a worker consuming the ``webhooks`` queue, signed as
Standard Webhooks and seed 003 say, and a receiver that fails first gets the delivery again.

Like ``test_worker.py``, these tests commit their data and purge ``REDIS_URL``'s queues."""

import hashlib
import hmac
import http.server
import json
import threading

import pytest
from standardwebhooks import Webhook

from jobs.models import SkillLevel
from jobs.tests.factories import CompanyFactory, TechnicianFactory
from routing.models import WebhookDelivery, WebhookDeliveryStatus
from routing.tasks import relay_outbox
from routing.tests.celery_workers import NEEDS_POSTGRESQL_AND_REDIS, wait_until
from routing.tests.factories import WebhookEndpointFactory

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    NEEDS_POSTGRESQL_AND_REDIS,
]


class Receiver:
    """A local HTTP receiver that records each request and answers ``statuses`` in turn (the
    last one ever after)."""

    def __init__(self, statuses=(204,)):
        self.requests: list[tuple[bytes, dict]] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((body, {k.lower(): v for k, v in self.headers.items()}))
                status = (
                    receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    started = []

    def start(statuses=(204,)):
        receiver = Receiver(statuses)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def test_a_real_worker_delivers_a_jobs_webhooks_to_live_receivers_and_retries(
    workers, api_client, receivers
):
    workers.start(
        WEBHOOK_ALLOW_HTTP="true",
        WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true",
        WEBHOOK_RETRY_SCHEDULE_SECONDS="1,1",
    )
    requester = CompanyFactory(service_areas=["IL"])
    technician = TechnicianFactory(company=requester)
    receiver_company = CompanyFactory(
        provider_type="mock", service_areas=["IL"], skills={"plumbing": SkillLevel.EXPERT}
    )
    requester_receiver = receivers()
    flaky_receiver = receivers(statuses=(503, 204))
    requester_endpoint = WebhookEndpointFactory(
        company=requester, url=requester_receiver.url, events=["job.created"]
    )
    receiver_endpoint = WebhookEndpointFactory(
        company=receiver_company, url=flaky_receiver.url, events=["job.routed"]
    )

    response = api_client.post(
        "/api/v1/jobs/",
        {
            "summary": "Fix leaky kitchen faucet",
            "address": {
                "street": "456 Oak Avenue",
                "city": "Springfield",
                "state": "IL",
                "zip_code": "62701",
            },
            "homeowner": {"name": "Jane Smith"},
            "created_by_company_id": str(requester.id),
            "created_by_technician_id": str(technician.id),
            "required_skills": ["plumbing"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content

    def all_delivered():
        return (
            WebhookDelivery.objects.count() == 2
            and not WebhookDelivery.objects.exclude(status=WebhookDeliveryStatus.DELIVERED).exists()
        )

    wait_until(all_delivered, timeout=60, workers=workers, interval=0.5, kick=relay_outbox.delay)

    [(body, headers)] = requester_receiver.requests
    secret = requester_endpoint.secrets["secret"]
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "job.created"
    assert payload["data"]["job_id"] == response.json()["id"]
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(f"sha256={expected}", headers["x-webhook-signature"])

    first, second = flaky_receiver.requests
    assert first[1]["webhook-id"] == second[1]["webhook-id"]
    routed = Webhook(receiver_endpoint.secrets["secret"]).verify(second[0], second[1])
    assert [r["company_id"] for r in routed["data"]["routings"]] == [str(receiver_company.id)]
    delivery = WebhookDelivery.objects.get(endpoint=receiver_endpoint)
    assert delivery.attempt_count == 2
    assert [a.response_status for a in delivery.attempts.order_by("number")] == [503, 204]
    assert json.loads(delivery.body)["type"] == "job.routed"
