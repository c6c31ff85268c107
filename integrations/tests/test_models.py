import pytest

from integrations.models import WebhookReceipt

pytestmark = pytest.mark.django_db


def test_a_webhook_event_is_recorded_once_per_provider():
    assert WebhookReceipt.record(provider="servicetitan", event_id="evt_1")
    assert not WebhookReceipt.record(provider="servicetitan", event_id="evt_1")
    assert WebhookReceipt.record(provider="crm", event_id="evt_1")
    assert WebhookReceipt.objects.count() == 2
