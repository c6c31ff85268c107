"""The dashboard in a real browser (headless Chromium): its charts drawn from the page's data,
its figures true and linked to the admin lists behind them."""

from datetime import timedelta

import pytest
from django.utils import timezone
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from analytics.services import daily_figures_roll_up
from analytics.tests.factories import failed_call, job_at, routing_of
from routing.models import SyncStatus

CHARTS = ["chart-hourly", "chart-daily", "chart-latency", "chart-revenue"]

# Of a canvas, how many pixels something was drawn on.
PAINTED_PIXELS = """
const canvas = document.getElementById(arguments[0]);
const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let painted = 0;
for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) painted++; }
return painted;
"""


@pytest.fixture
def month_of_work():
    """A job and its synced routing every few hours for ten days, some completed with revenue,
    a few failed calls, and two routings failed for good."""
    now = timezone.now()
    for n in range(60):
        job = job_at(now - timedelta(hours=4 * n + 1))
        routing = routing_of(
            job,
            synced_after=timedelta(seconds=2 + n % 7),
            completed_after=timedelta(hours=3) if n % 3 == 0 and n > 0 else None,
            revenue="180.00" if n % 3 == 0 and n > 0 else None,
        )
        if n % 5 == 0:
            failed_call(routing, job.created_at + timedelta(seconds=1))
    for _ in range(2):
        routing_of(job_at(now - timedelta(minutes=30)), status=SyncStatus.FAILED)
    daily_figures_roll_up()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_dashboard_draws_its_charts_and_links_its_figures(
    admin_browser, live_server, month_of_work, save_screenshot
):
    browser = admin_browser
    browser.find_element(By.LINK_TEXT, "Dashboard").click()

    WebDriverWait(browser, 15).until(
        lambda b: all(
            b.find_element(By.ID, chart).get_attribute("data-rendered") == "true"
            for chart in CHARTS
        ),
        message="the charts were not drawn",
    )
    assert browser.title.startswith("Dashboard |")
    for chart in CHARTS:
        assert browser.execute_script(PAINTED_PIXELS, chart) > 1000, chart
    assert browser.find_element(By.CSS_SELECTOR, "#figure-failed .value").text == "2"
    assert browser.find_element(By.CSS_SELECTOR, "#figure-jobs-24h .value").text == "8"
    browser.set_window_size(1400, 1900)  # the whole page in the screenshot
    assert save_screenshot(browser, "admin-dashboard.png").stat().st_size > 0

    browser.find_element(By.ID, "figure-failed").click()
    WebDriverWait(browser, 15).until(lambda b: "/admin/routing/jobrouting/" in b.current_url)
    assert "sync_status__exact=failed" in browser.current_url
    assert "2 job routings" in browser.find_element(By.ID, "changelist-form").text
