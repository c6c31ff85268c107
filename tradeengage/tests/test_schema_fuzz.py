"""Schemathesis over the whole OpenAPI schema, in process (issue 14, "Proof").

Every operation that ``/openapi.json`` describes is called through the WSGI application with
generated requests, valid and invalid (schemathesis' coverage phase, then 50 fuzzed examples,
which the ``flatmap_*`` hooks often point at real rows), and every answer must be no 5xx, carry a
status code the operation documents, and match the documented content type and body schema.

- Every generated request carries an ops API key. Each operation that takes a key is also sent
  one request without it, which must get its documented 401.
- The demo network (``seed_demo``), a ServiceTitan job and a client-processing run in each
  status are loaded once for the module. Job bodies are often made of the network's
  technicians, skills and categories, so job creation gets past validation; path ids and company
  ids are often real jobs, ServiceTitan jobs, processing runs and companies, so detail pages,
  manual sync and the ServiceTitan job endpoints get past their 404.
- Outbound HTTP is refused (``responses`` with nothing registered): a manual sync to a company
  whose field-service system is reached over HTTP fails as when that system is down.
- Excluded: nothing. The ServiceTitan webhook is covered although no generated request carries
  a valid signature: it answers its documented 400 or 401, which is what can be checked here.
  Cancelling a ServiceTitan job (DELETE) is covered, but only up to its 400: its reason travels
  in a body that OpenAPI 3.0 cannot describe for a DELETE, so none is generated.
"""

import io
from collections import Counter

import pytest
import responses
import schemathesis
from django.core.cache import cache
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from integrations.models import SimulatedJob
from integrations.tests.factories import SimulatedJobFactory
from jobs.models import Category, Company, Job, Skill, SkillLevel, Technician
from processing.models import ProcessingJob
from processing.tests.factories import ProcessingJobFactory
from tradeengage import heartbeats
from tradeengage.wsgi import application

# Fuzzing examples per operation, on top of the coverage phase's deterministic cases: the module
# stays well under a minute on CI's two cores (the README's Security section has the figures).
MAX_EXAMPLES = 50
SEED = 14
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# What every WSGI server (gunicorn, runserver) puts in a request's environ and werkzeug's test
# client leaves out.
SERVER_ENVIRON = {"REMOTE_ADDR": "127.0.0.1"}

# Security parameters off: schemathesis would otherwise send requests without the key, which
# only ever reach the 401 (test_every_keyed_operation_documents_its_401 below covers that once
# per operation).
CONFIG = schemathesis.Config.from_dict(
    {"seed": SEED, "generation": {"with-security-parameters": False}}
)
schema = schemathesis.openapi.from_wsgi("/openapi.json", application, config=CONFIG)
cases_run: Counter = Counter()


class CasesRunReport:
    """Prints how many cases ran in pytest's closing summary, where CI's log shows it."""

    def pytest_terminal_summary(self, terminalreporter):
        if not cases_run:
            return
        phases = Counter()
        for (_, phase), count in cases_run.items():
            phases[phase] += count
        terminalreporter.write_line(
            f"schemathesis: {sum(cases_run.values())} cases over "
            f"{len({label for label, _ in cases_run})} operations ("
            + ", ".join(f"{phase} {count}" for phase, count in sorted(phases.items()))
            + ")"
        )


@pytest.fixture(scope="module", autouse=True)
def _cases_run_reported(request):
    if not request.config.pluginmanager.has_plugin("schemathesis-cases-run"):
        request.config.pluginmanager.register(CasesRunReport(), "schemathesis-cases-run")


@pytest.fixture(scope="module", autouse=True)
def _connection_kept_across_requests():
    """Django's WSGI handler closes the database connection around a request that finds it
    outside autocommit, which a test's transaction always is; on PostgreSQL that would end the
    test's transaction at the first request. Django's test client stops it the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(scope="module")
def demo_network(django_db_setup, django_db_blocker):
    """The demo network, a ServiceTitan job and a client-processing run in each status, loaded
    once for the module and rolled back after it; each operation's test runs in a savepoint
    inside this transaction (pytest-django's ``db``)."""
    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", stdout=io.StringIO())
        for status in SimulatedJob.Status.values:
            SimulatedJobFactory(status=status)
        client = Company.objects.order_by("id").first()
        for status in ProcessingJob.Status.values:
            ProcessingJobFactory(client=client, status=status)
        yield
        transaction.set_rollback(True)


@pytest.fixture
def outbound_http_refused():
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        yield


@schema.hook
def flatmap_body(context, body):
    if not isinstance(body, dict):
        return st.just(body)
    label = context.operation.label
    if label == "POST /api/v1/jobs/":
        return st.one_of(_demo_job(), st.just(body))
    if label == "POST /api/v1/jobs/{job_id}/sync":
        # An ops key's override routes the job to a company whatever skills it holds.
        manual_route = _with_demo_company({**body, "override": True}, "company_id")
        return st.one_of(manual_route, st.just(body))
    if label == "POST /api/process-client":
        return st.one_of(_with_demo_company(body, "client_id"), st.just(body))
    return st.just(body)


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if not path_parameters or "job_id" not in path_parameters:
        return st.just(path_parameters)
    path = context.operation.path
    if path.startswith("/api/v1/"):
        ids = Job.objects.order_by("created_at", "id").values_list("id", flat=True)
    elif path.startswith("/api/integrations/servicetitan/"):
        ids = [
            SimulatedJob.JOB_ID_OFFSET + pk
            for pk in SimulatedJob.objects.order_by("id").values_list("id", flat=True)
        ]
    else:
        ids = ProcessingJob.objects.order_by("created_at", "job_id").values_list(
            "job_id", flat=True
        )
    known = [str(pk) for pk in ids]
    if not known:
        return st.just(path_parameters)
    return st.one_of(
        st.sampled_from(known).map(lambda pk: {**path_parameters, "job_id": pk}),
        st.just(path_parameters),
    )


def _demo_job():
    """A job body that passes validation: a demo technician and its company, known skills and
    category, and levels only for required skills."""
    technicians = list(Technician.objects.order_by("id").values_list("id", "company_id"))
    skills = list(Skill.objects.order_by("slug").values_list("slug", flat=True))
    categories = list(Category.objects.order_by("slug").values_list("slug", flat=True))

    @st.composite
    def job(draw):
        technician_id, company_id = draw(st.sampled_from(technicians))
        required = draw(st.lists(st.sampled_from(skills), max_size=3, unique=True))
        leveled = draw(st.lists(st.sampled_from(required), unique=True)) if required else []
        city, state, zip_code = draw(
            st.sampled_from([("Springfield", "IL", "62701"), ("Austin", "TX", "73301-1234")])
        )
        body = {
            "summary": draw(st.sampled_from(["Fix leaky kitchen faucet", "Panel upgrade"])),
            "address": {
                "street": "456 Oak Avenue",
                "city": city,
                "state": state,
                "zip_code": zip_code,
            },
            "homeowner": {"name": "Jane Smith", "phone": "(555) 987-6543", "email": None},
            "created_by_company_id": str(company_id),
            "created_by_technician_id": str(technician_id),
            "skill_levels": {slug: draw(st.sampled_from(SkillLevel.labels)) for slug in leveled},
            "category": draw(st.sampled_from([None, *categories])),
        }
        # No required skills is sent as none at all: an empty list is refused.
        if required:
            body["required_skills"] = required
        return body

    return job()


def _with_demo_company(body, field):
    ids = [str(pk) for pk in Company.objects.order_by("id").values_list("id", flat=True)]
    return st.sampled_from(ids).map(lambda pk: {**body, field: pk})


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # Function-scoped fixtures (the ops key, the refused HTTP) are meant to be shared by every
    # example of an operation, and the hooks query the database at every draw.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_the_schema_says(
    case, demo_network, ops_key, outbound_http_refused
):
    # A case is one request, not part of a burst: the rate limits (access/tests) start afresh;
    # the background is alive, as its heartbeats tell the detailed health.
    cache.clear()
    heartbeats.worker_heartbeat("celery@fuzz", ["critical", "high", "default", "low", "webhooks"])
    heartbeats.beat_tick()
    cases_run[case.operation.label, case.meta.phase.name.value] += 1
    case.call_and_validate(
        headers={"X-API-Key": ops_key}, checks=CHECKS, environ_base=SERVER_ENVIRON
    )


KEYED_OPERATIONS = [
    operation
    for operation in (result.ok() for result in schema.get_all_operations())
    if any(operation.definition.raw.get("security", [{}]))
]


@pytest.mark.parametrize("operation", KEYED_OPERATIONS, ids=lambda operation: operation.label)
def test_every_keyed_operation_documents_its_401(operation, db):
    path_parameters = {parameter.name: "1" for parameter in operation.path_parameters}
    case = operation.Case(path_parameters=path_parameters)

    response = case.call(environ_base=SERVER_ENVIRON)

    assert response.status_code == 401
    case.validate_response(response, checks=CHECKS)
