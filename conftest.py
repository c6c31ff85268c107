import os
import secrets
import tempfile
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from access.services import api_key_create
from integrations.mock import call_recorder
from jobs import matching
from jobs.models import SkillLevel
from jobs.selectors import managed_lists_forget
from jobs.tests.factories import CompanyFactory, TechnicianFactory, category
from routing.outbox import outbox_relay_kick_forget
from routing.services.webhooks import companies_with_endpoints_forget
from routing.tests.celery_workers import Workers
from tradeengage import heartbeats
from tradeengage.celery import app as celery_app


@pytest.fixture(autouse=True, scope="session")
def _mock_recorder_stopped_at_the_end():
    """The mock provider's call recorder keeps a connection of its own while calls come: it is
    closed before the test database is dropped."""
    yield
    call_recorder.stop()


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
    companies_with_endpoints_forget()


@pytest.fixture(autouse=True)
def _provider_calls_in_the_test_thread(settings):
    """Provider calls run in the calling thread, inside the test's transaction; the thread pool
    of real workers would open connections that the test database cannot roll back."""
    settings.SYNC_CALL_CONCURRENCY = 1


# What every name resolves to in tests, unless a test says otherwise (``resolver``): a public
# address, so registering a webhook URL never waits on real DNS (the schema fuzzer posts many).
PUBLIC_TEST_ADDRESS = "93.184.215.14"


@pytest.fixture(autouse=True)
def resolver(monkeypatch):
    """Webhook hosts resolve through this table instead of DNS: ``resolver["name"] =
    ["10.0.0.1"]``; any other name resolves to ``PUBLIC_TEST_ADDRESS``."""
    table: dict[str, list[str]] = {}
    monkeypatch.setattr(
        "integrations.webhooks.dns_lookup",
        lambda host, port: table.get(host, [PUBLIC_TEST_ADDRESS]),
    )
    return table


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


# The browser tests (``@pytest.mark.browser``) drive Debian's Chromium with its chromedriver
# (apt-get install chromium chromium-driver); nothing is ever downloaded at run time.
CHROMIUM_ARGUMENTS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]
SCREENSHOTS_DIR = Path(__file__).resolve().parent / "var" / "screenshots"


@pytest.fixture
def browser(monkeypatch):
    """A headless Chromium (Selenium WebDriver) with a fresh profile, quit afterwards. Skipped
    when Chromium or its driver is missing, failed instead when BROWSER_TESTS=required (CI).
    CHROMIUM_PATH and CHROMEDRIVER_PATH override /usr/bin/chromium and /usr/bin/chromedriver."""
    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    chromedriver = os.environ.get("CHROMEDRIVER_PATH", "/usr/bin/chromedriver")
    missing = [path for path in (chromium, chromedriver) if not os.access(path, os.X_OK)]
    if missing:
        reason = (
            "Chromium not installed: apt-get install chromium chromium-driver (Debian) to run the "
            "browser tests"
        )
        if os.environ.get("BROWSER_TESTS") == "required":
            pytest.fail(f"{reason} (missing: {', '.join(missing)}; BROWSER_TESTS=required)")
        pytest.skip(reason)

    # The driver's path is given, so Selenium Manager never runs; offline in case it would.
    monkeypatch.setenv("SE_OFFLINE", "true")
    with tempfile.TemporaryDirectory(
        prefix="chromium-profile-", ignore_cleanup_errors=True
    ) as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in [*CHROMIUM_ARGUMENTS, f"--user-data-dir={profile}"]:
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def admin_browser(browser, live_server, django_user_model):
    """``browser`` logged in to the admin of the live server as a new superuser, through the real
    login form (and django-axes), showing the admin index."""
    password = secrets.token_urlsafe(24)
    django_user_model.objects.create_superuser("ops-browser", "ops-browser@example.com", password)

    browser.get(live_server.url + "/admin/login/")
    browser.find_element(By.ID, "id_username").send_keys("ops-browser")
    browser.find_element(By.ID, "id_password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    WebDriverWait(browser, 15).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "body.dashboard")),
        message="the admin index did not show after logging in",
    )
    return browser


@pytest.fixture
def save_screenshot():
    """``save_screenshot(browser, name)``: saves the browser's window as var/screenshots/<name>
    (PNG) and returns its path."""

    def save(browser, name: str) -> Path:
        SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS_DIR / (name if name.endswith(".png") else f"{name}.png")
        assert browser.save_screenshot(str(path)), f"could not save {path}"
        return path

    return save


@pytest.fixture
def background_alive():
    """A live worker consuming every queue and a beat that just ticked, as their heartbeats
    tell ``/api/v1/health/detailed``."""
    heartbeats.worker_heartbeat("celery@tests", ["critical", "high", "default", "low", "webhooks"])
    heartbeats.beat_tick()
