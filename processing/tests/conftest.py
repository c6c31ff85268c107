import pytest

from jobs.models import SkillLevel
from jobs.tests.factories import CompanyFactory


@pytest.fixture
def client_company(db):
    """A plumber serving Illinois and ZIP area 606, on the mock provider."""
    return CompanyFactory(
        name="Windy City Plumbing",
        service_areas=["IL", "606"],
        skills={"plumbing": SkillLevel.INTERMEDIATE},
        leads_per_report=5,
        notification_email="dispatch@windy.example",
        provider_type="mock",
    )
