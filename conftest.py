import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from access.services import api_key_create
from jobs import matching
from jobs.models import SkillLevel
from jobs.selectors import managed_lists_forget
from jobs.tests.factories import CompanyFactory, TechnicianFactory, category
from routing.outbox import outbox_relay_kick_forget
from routing.tests.celery_workers import Workers
from tradeengage.celery import app as celery_app


@pytest.fixture(autouse=True)
def _tasks_run_in_process():
    """Whatever enqueues a task in a test runs it in-process: no test ever talks to a broker."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _private_cache(settings):
    """Each test gets an empty in-memory cache: nothing cached leaks between tests or runs. The
    rate limits count in it too, so every test starts with fresh budgets under the real limits:
    no test comes near them (the schema fuzzer clears the cache before each case)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "tests",
        }
    }

    cache.clear()
    managed_lists_forget()
    outbox_relay_kick_forget()


@pytest.fixture(autouse=True)
def _provider_calls_in_the_test_thread(settings):
    """Provider calls run in the calling thread, inside the test's transaction; the thread pool
    of real workers would open connections that the test database cannot roll back."""
    settings.SYNC_CALL_CONCURRENCY = 1


@pytest.fixture(autouse=True)
def _network_counted_afresh():
    """Matching counts the network at most once a minute per process to choose how to rank it;
    each test starts uncounted, so no test sees the size of another test's network."""

    matching._network_size.clear()


@pytest.fixture(autouse=True)
def _skip_postgres_only_tests_elsewhere(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture
def ops_key(db) -> str:
    """An operations API key: sees and does everything, for every company."""
    return api_key_create(name="tests (ops)")[1]


@pytest.fixture
def api_client(ops_key):
    """An API client carrying an ops key. Tenant rules are tested with company keys
    (``company_key``) in access/tests/test_tenant_matrix.py and the view tests that need them."""
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=ops_key)
    return client


@pytest.fixture
def anonymous_client():
    return APIClient()


@pytest.fixture
def company_key(db):
    """``company_key(company, scopes=None)``: a new API key of that company, as its text."""

    def create(company, scopes=None) -> str:
        return api_key_create(name=f"tests ({company.name})", company_id=company.id, scopes=scopes)[
            1
        ]

    return create


@pytest.fixture
def workers(tmp_path):
    """Real Celery worker processes (``workers.start(**environment)``) on the test database and
    broker; the queues are purged before and after."""
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    workers = Workers(tmp_path)
    yield workers
    workers.stop_all()
    celery_app.control.purge()


@pytest.fixture
def ops_client(client, django_user_model):
    """A logged-in superuser: the ops staff of the admin."""
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-password")
    client.force_login(user)
    return client


@pytest.fixture
def requesting_company(db):
    """A plumbing company in Springfield, IL; it is itself a perfect plumbing match, so every job
    it requests also checks that a job is never routed back to its requester."""
    return CompanyFactory(
        name="Springfield Plumbing (requester)",
        primary_category=category("plumbing"),
        service_areas=["IL", "627"],
        skills={"plumbing": SkillLevel.EXPERT},
    )


@pytest.fixture
def requesting_technician(requesting_company):
    return TechnicianFactory(company=requesting_company, name="Tom Tech")


@pytest.fixture
def plumbing_company(db):
    return CompanyFactory(
        name="Prairie Plumbing",
        primary_category=category("plumbing"),
        service_areas=["IL"],
        skills={"plumbing": SkillLevel.EXPERT},
    )


@pytest.fixture
def electrical_company(db):
    return CompanyFactory(
        name="Lincoln Electric",
        primary_category=category("electrical"),
        service_areas=["IL"],
        skills={"electrical": SkillLevel.INTERMEDIATE},
    )


@pytest.fixture
def job_payload(requesting_company, requesting_technician):
    """The job body of seed 000's "Complete Job Creation Flow" example."""
    return {
        "summary": "Fix leaky kitchen faucet",
        "address": {
            "street": "456 Oak Avenue",
            "city": "Springfield",
            "state": "IL",
            "zip_code": "62701",
        },
        "homeowner": {
            "name": "Jane Smith",
            "phone": "(555) 987-6543",
            "email": "jane.smith@email.com",
        },
        "created_by_company_id": str(requesting_company.id),
        "created_by_technician_id": str(requesting_technician.id),
        "required_skills": ["plumbing"],
        "skill_levels": {"plumbing": "expert"},
        "category": "plumbing",
    }
