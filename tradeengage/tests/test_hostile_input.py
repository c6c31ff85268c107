"""Input that once ended in a 500: a lone surrogate echoed back in an error could not be encoded.
Each contract now refuses such input as malformed, in its own shape, and text fields refuse
control characters and bidirectional overrides."""

import io
import json

import pytest
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient

from jobs.models import Job
from tradeengage.parsers import JSONParser

pytestmark = pytest.mark.django_db

LONE_SURROGATE = "\ud800"


def parse(text: str):
    return JSONParser().parse(io.BytesIO(text.encode()), "application/json", {})


@pytest.mark.parametrize(
    "body",
    [
        '"\\ud800"',
        '{"skill_levels": {"\\udfff": "basic"}}',
        '{"a": [1, {"b": ["ok", "x\\ud83dy"]}]}',
    ],
    ids=["string", "dict-key", "nested-value"],
)
def test_a_lone_surrogate_anywhere_is_malformed_json(body):
    with pytest.raises(ParseError, match="unpaired surrogate"):
        parse(body)


def test_a_surrogate_pair_is_a_character_and_passes():
    assert parse('{"summary": "leak \\ud83d\\udca7"}') == {"summary": "leak \U0001f4a7"}


@pytest.fixture(autouse=True)
def _ops_key(ops_key):
    global OPS_KEY
    OPS_KEY = ops_key


OPS_KEY = ""


def client() -> APIClient:
    """An ops key's client: what is tested is the input, not who sends it."""
    api_client = APIClient(raise_request_exception=False)
    api_client.credentials(HTTP_X_API_KEY=OPS_KEY)
    return api_client


def post_raw(path: str, data: dict, **headers):
    # ensure_ascii keeps the lone surrogate as the \ud800 escape a hostile client would send.
    body = json.dumps(data, ensure_ascii=True)
    headers.setdefault("x_api_key", OPS_KEY)
    return client().generic("POST", path, body, content_type="application/json", headers=headers)


def test_a_job_with_a_lone_surrogate_in_its_skills_is_a_422_in_the_v1_shape(job_payload):
    job_payload["skill_levels"] = {LONE_SURROGATE: "basic"}
    job_payload["required_skills"] = [LONE_SURROGATE]

    response = post_raw("/api/v1/jobs/", job_payload)

    assert response.status_code == 422, response.content
    body = response.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    assert "unpaired surrogate" in body["detail"]
    assert not Job.objects.exists()


@pytest.mark.parametrize("field", ["firstName", "address", "city", "specialInstructions"])
def test_a_servicetitan_booking_with_a_lone_surrogate_is_a_400_in_the_seed_001_shape(field):
    booking = {
        "firstName": "John",
        "lastName": "Doe",
        "phone": "4805551234",
        "email": "john.doe@email.com",
        "address": "123 Main St",
        "city": "Phoenix",
        "state": "AZ",
        "zip": "85001",
        "problemType": "broken_spring",
        field: f"x{LONE_SURROGATE}",
    }

    response = post_raw("/api/integrations/servicetitan/jobs", booking)

    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["success"], body["error"]) == (False, "Validation Error")
    assert "unpaired surrogate" in body["message"]


def test_a_client_processing_request_with_a_lone_surrogate_is_a_422_detail(settings):
    settings.PROCESSING_API_KEYS = ["a-key"]

    response = post_raw("/api/process-client", {"client_id": LONE_SURROGATE}, x_api_key="a-key")

    assert response.status_code == 422, response.content
    assert "unpaired surrogate" in response.json()["detail"]


@pytest.mark.parametrize(
    "text",
    ["Fix\x00faucet", "Fix\x1bfaucet", "Fix \u202efaucet", "Fix \u2066faucet\u2069"],
    ids=["nul", "escape", "right-to-left-override", "isolate"],
)
def test_a_job_summary_with_control_or_bidi_characters_is_refused(job_payload, text):
    job_payload["summary"] = text

    response = client().post("/api/v1/jobs/", job_payload, format="json")

    assert response.status_code == 422, response.content
    assert any(
        error["field"] == "summary" and "not allowed" in error["message"]
        for error in response.json()["errors"]
    )


def test_a_job_summary_may_hold_line_breaks_and_tabs(job_payload):
    job_payload["summary"] = "Kitchen faucet\n\tdrips all night"

    response = client().post("/api/v1/jobs/", job_payload, format="json")

    assert response.status_code == 201, response.content


@pytest.mark.parametrize("zip_code", ["62701-1234", "62701"])
def test_a_us_zip_or_zip_plus_four_is_accepted(job_payload, zip_code):
    job_payload["address"]["zip_code"] = zip_code

    assert client().post("/api/v1/jobs/", job_payload, format="json").status_code == 201


@pytest.mark.parametrize("zip_code", ["ABCDE", "627011", "62701-12", "6270 1"])
def test_anything_else_is_not_a_zip_code(job_payload, zip_code):
    job_payload["address"]["zip_code"] = zip_code

    response = client().post("/api/v1/jobs/", job_payload, format="json")

    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["field"] == "address.zip_code"


def test_a_servicetitan_cancellation_reason_with_a_bidi_override_is_refused():
    response = client().generic(
        "DELETE",
        "/api/integrations/servicetitan/jobs/1001",
        json.dumps({"reason": "Customer \u202ecancelled"}),
        content_type="application/json",
    )

    assert response.status_code == 400, response.content
    assert response.json()["details"][0]["field"] == "reason"


@pytest.mark.parametrize(
    ("path", "headers", "shape"),
    [
        ("/api/integrations/servicetitan/jobs", {}, {"success", "error", "message", "details"}),
        ("/api/integrations/servicetitan/webhook", {}, {"success", "error", "message", "details"}),
        ("/api/process-client", {"x_api_key": "a-key"}, {"detail"}),
    ],
)
def test_a_body_over_the_upload_limit_is_413_in_each_contracts_shape(
    settings, path, headers, shape
):
    settings.PROCESSING_API_KEYS = ["a-key"]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000

    response = post_raw(path, {"padding": "x" * 5_000}, **headers)

    assert response.status_code == 413, response.content
    assert set(response.json()) == shape
