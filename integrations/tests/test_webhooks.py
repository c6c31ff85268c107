"""Outbound webhooks' plumbing (``integrations.webhooks``): both signatures as receivers verify
them, the address checks against SSRF, and the HTTP call's rules (no redirects, a deadline,
the connection pinned to a checked address)."""

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest
import responses
from standardwebhooks import Webhook

from integrations.webhooks import (
    UnsafeUrl,
    address_is_public,
    secret_generate,
    signed_headers,
    url_check,
    webhook_send,
)

BODY = json.dumps({"type": "job.created", "timestamp": "2026-11-30T10:00:00+00:00", "data": {}})


def verify_webhook_signature(payload: bytes, signature: str, secret: str) -> bool:
    """Seed 003's recipe, verbatim."""
    expected = hmac.new(secret.encode("utf-8"), payload, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={expected}", signature)


def send(url="https://hooks.example.com/in", secrets=None, **options):
    options = {
        "timeout": 15.0,
        "allow_http": False,
        "allow_private": False,
        "lookup_timeout": 1.0,
        **options,
    }
    return webhook_send(
        url=url,
        message_id="msg_1",
        body=BODY.encode(),
        secrets=secrets or [secret_generate()],
        **options,
    )


def test_a_secret_is_whsec_and_base64_of_24_random_bytes():
    secret = secret_generate()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert secret != secret_generate()


@responses.activate
def test_a_delivery_verifies_with_standard_webhooks_and_with_seed_003s_recipe():
    secret = secret_generate()
    responses.post("https://hooks.example.com/in", status=204)

    result = send(secrets=[secret])

    assert result.succeeded and result.status == 204
    request = responses.calls[0].request
    headers = dict(request.headers)
    assert Webhook(secret).verify(request.body, headers) == json.loads(BODY)
    assert verify_webhook_signature(request.body, headers["X-Webhook-Signature"], secret)
    assert headers["webhook-id"] == "msg_1"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("TradeEngage-Webhooks/")


def test_each_active_secret_signs_and_each_verifies_alone():
    new, old = secret_generate(), secret_generate()
    now = int(time.time())
    headers = signed_headers(
        message_id="msg_1", timestamp=now, body=BODY.encode(), secrets=[new, old]
    )

    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        Webhook(secret).verify(BODY.encode(), headers)
    assert verify_webhook_signature(BODY.encode(), headers["X-Webhook-Signature"], new)
    assert not verify_webhook_signature(BODY.encode(), headers["X-Webhook-Signature"], old)


@responses.activate
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_counts_as_a_failure(status):
    responses.post(
        "https://hooks.example.com/in", status=status, headers={"Location": "http://10.0.0.1/"}
    )

    result = send()

    assert not result.succeeded
    assert result.status == status
    assert "redirects are not followed" in result.error
    assert len(responses.calls) == 1


@responses.activate
def test_an_error_status_is_a_failure_with_the_first_bytes_of_the_answer():
    responses.post("https://hooks.example.com/in", status=500, body="x" * 5000)

    result = send()

    assert (result.succeeded, result.status, result.error) == (False, 500, "HTTP 500")
    assert result.response_start == "x" * 1024


@responses.activate
def test_an_answer_after_the_deadline_does_not_count(monkeypatch):
    responses.post("https://hooks.example.com/in", status=200)
    ticks = iter([0.0, 16.0])
    monkeypatch.setattr("integrations.webhooks.time.monotonic", lambda: next(ticks))

    result = send(timestamp=1)

    assert not result.succeeded
    assert "only an answer within 15 s counts" in result.error


@responses.activate
def test_a_connection_failure_is_a_result_not_an_exception():
    result = send()  # nothing registered: responses refuses the connection

    assert (result.succeeded, result.status) == (False, None)
    assert "ConnectionError" in result.error


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("fd00::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
    ],
)
def test_address_checks(address, public):
    assert address_is_public(address) is public


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://internal.example.com/hook",
    ],
)
def test_urls_reaching_private_addresses_are_refused(url, resolver):
    resolver["internal.example.com"] = ["93.184.215.14", "10.0.0.7"]

    with pytest.raises(UnsafeUrl, match="non-public address"):
        url_check(url, allow_http=False, allow_private=False, timeout=1.0)

    url_check(url, allow_http=False, allow_private=True, timeout=1.0)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/", "must use https"),
        ("ftp://hooks.example.com/", "must use https"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https:///nohost", "no host"),
    ],
)
def test_scheme_host_and_credentials_are_checked(url, message):
    with pytest.raises(UnsafeUrl, match=message):
        url_check(url, allow_http=False, allow_private=False, timeout=1.0)


def test_http_is_allowed_only_when_the_setting_allows_it():
    url_check("http://hooks.example.com/", allow_http=True, allow_private=False, timeout=1.0)


def test_a_name_that_does_not_resolve_in_time_is_refused_not_waited_for(monkeypatch):
    monkeypatch.setattr("integrations.webhooks.dns_lookup", lambda host, port: time.sleep(2))
    started = time.monotonic()

    with pytest.raises(UnsafeUrl, match=r"did not resolve within 0\.2 s"):
        url_check("https://slow.example.com/", allow_http=False, allow_private=False, timeout=0.2)

    assert time.monotonic() - started < 1.5


def test_a_name_that_does_not_resolve_is_refused(monkeypatch):
    def nxdomain(host, port):
        raise OSError("Name or service not known")

    monkeypatch.setattr("integrations.webhooks.dns_lookup", nxdomain)

    with pytest.raises(UnsafeUrl, match="does not resolve"):
        url_check("https://nx.example.com/", allow_http=False, allow_private=False, timeout=1.0)


@pytest.mark.parametrize("url", ["https://127.0.0.1/", "https://169.254.169.254/"])
@responses.activate
def test_a_private_address_is_refused_at_delivery_and_nothing_is_sent(url):
    result = send(url=url)

    assert not result.succeeded
    assert result.error.startswith("Refused:")
    assert not responses.calls


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def local_receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_connection_goes_to_the_checked_address_when_private_ones_are_allowed(
    local_receiver, resolver
):
    resolver["receiver.test"] = ["127.0.0.1"]

    result = send(
        url=f"http://receiver.test:{local_receiver}/hook", allow_http=True, allow_private=True
    )

    assert result.succeeded, result.error


def test_a_name_that_turns_private_between_the_check_and_the_connection_is_refused(
    local_receiver, resolver, monkeypatch
):
    """DNS rebinding: the first answer passes the check, the second (when connecting) points
    at the local receiver; the connection is refused and the receiver hears nothing."""
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])
    monkeypatch.setattr("integrations.webhooks.dns_lookup", lambda host, port: next(answers))

    result = send(url=f"http://rebind.test:{local_receiver}/hook", allow_http=True)

    assert not result.succeeded
    assert "non-public address" in result.error
