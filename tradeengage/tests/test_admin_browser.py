"""The admin in a real browser: headless Chromium logs in through the login form and sees the
index, styled (its CSS served by the live server)."""

import pytest
from django.apps import apps
from selenium.webdriver.common.by import By


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_admin_index_shows_the_apps_styled(admin_browser, save_screenshot):
    browser = admin_browser

    assert browser.title == "Site administration | TradeEngage operations"
    assert browser.find_element(By.ID, "site-name").text == "TradeEngage operations"
    assert browser.find_element(By.CSS_SELECTOR, "#content h1").text == "Site administration"
    # The jobs app's section ("Jobs and companies"); captions are shown upper-cased by the CSS.
    jobs = apps.get_app_config("jobs").verbose_name
    captions = [element.text for element in browser.find_elements(By.CSS_SELECTOR, "caption")]
    assert jobs.upper() in [caption.upper() for caption in captions], captions
    assert browser.find_element(By.CSS_SELECTOR, "#content-main .app-jobs caption a")
    # The admin's stylesheets loaded and apply: its header has the admin's blue background.
    assert browser.execute_script("return document.styleSheets.length") > 0
    header = browser.find_element(By.ID, "header")
    assert header.value_of_css_property("background-color") == "rgba(65, 118, 144, 1)"

    assert save_screenshot(browser, "admin-index.png").stat().st_size > 0
