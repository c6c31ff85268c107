import pytest
import yaml
from django.core.management import call_command

API_PATHS = [
    "/api/v1/jobs/",
    "/api/v1/jobs/{job_id}",
    "/api/v1/jobs/{job_id}/routings",
    "/api/v1/health",
    "/api/v1/health/detailed",
    "/api/v1/health/ready",
    "/api/v1/health/live",
    "/api/v1/jobs/{job_id}/sync",
    "/api/integrations/servicetitan/health",
    "/api/integrations/servicetitan/auth/test",
    "/api/integrations/servicetitan/jobs",
    "/api/integrations/servicetitan/jobs/{job_id}",
    "/api/integrations/servicetitan/jobs/{job_id}/status",
    "/api/integrations/servicetitan/jobs/batch",
    "/api/integrations/servicetitan/webhook",
    "/api/health",
    "/api/process-client",
    "/api/job-status/{job_id}",
    "/api/process-retry-queue",
]


@pytest.fixture
def schema(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def resolve(schema: dict, reference: str) -> dict:
    assert reference.startswith("#/components/schemas/"), reference
    return schema["components"]["schemas"][reference.rsplit("/", 1)[1]]


def test_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "openapi.yml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    document = yaml.safe_load(target.read_text())
    assert document["info"]["title"] == "TradeEngage Service Integration API"


def test_schema_lists_every_v1_path(schema):
    assert schema["openapi"].startswith("3.")
    for path in API_PATHS:
        assert path in schema["paths"], path
    assert set(schema["paths"]["/api/v1/jobs/"]) >= {"get", "post"}


def test_job_creation_documents_the_validation_error_shape(schema):
    responses = schema["paths"]["/api/v1/jobs/"]["post"]["responses"]

    assert set(responses) >= {"201", "400", "422"}
    error = resolve(schema, responses["422"]["content"]["application/json"]["schema"]["$ref"])
    assert set(error["properties"]) == {"detail", "error_code", "timestamp", "errors"}
    field_error = resolve(schema, error["properties"]["errors"]["items"]["$ref"])
    assert set(field_error["properties"]) == {"field", "message"}


def test_job_creation_documents_the_created_job(schema):
    responses = schema["paths"]["/api/v1/jobs/"]["post"]["responses"]

    job = resolve(schema, responses["201"]["content"]["application/json"]["schema"]["$ref"])
    assert {"id", "summary", "address", "homeowner", "status", "revenue"} <= set(job["properties"])


def test_unknown_job_documents_the_not_found_shape(schema):
    responses = schema["paths"]["/api/v1/jobs/{job_id}"]["get"]["responses"]

    error = resolve(schema, responses["404"]["content"]["application/json"]["schema"]["$ref"])
    assert set(error["properties"]) == {"detail", "error_code", "timestamp"}


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_documentation_pages_answer(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert b"/openapi.json" in response.content


def test_the_servicetitan_simulator_is_not_our_api(schema):
    assert not [path for path in schema["paths"] if path.startswith("/servicetitan-sim")]


def test_servicetitan_jobs_by_date_range_is_described_as_a_list(schema):
    response = schema["paths"]["/api/integrations/servicetitan/jobs"]["get"]["responses"]["200"]
    envelope = resolve(schema, response["content"]["application/json"]["schema"]["$ref"])

    assert envelope["properties"]["data"]["type"] == "array"


def test_a_booking_is_described_with_its_name_and_phone_rules(schema):
    request = schema["paths"]["/api/integrations/servicetitan/jobs"]["post"]["requestBody"]
    booking = resolve(schema, request["content"]["application/json"]["schema"]["$ref"])

    for field in ("firstName", "lastName", "phone"):
        assert booking["properties"][field]["pattern"], field


def test_a_job_names_at_least_one_required_skill_when_it_names_any(schema):
    request = schema["paths"]["/api/v1/jobs/"]["post"]["requestBody"]
    job = resolve(schema, request["content"]["application/json"]["schema"]["$ref"])

    assert job["properties"]["required_skills"]["minItems"] == 1


@pytest.mark.parametrize(
    "path", [path for path in API_PATHS if path.startswith("/api/integrations/servicetitan/")]
)
def test_servicetitan_endpoints_document_the_ops_key_they_take(schema, path):
    for method, operation in schema["paths"][path].items():
        if path.endswith("/webhook"):
            assert "403" not in operation["responses"], method
        else:
            assert {"401", "403"} <= set(operation["responses"]), method
