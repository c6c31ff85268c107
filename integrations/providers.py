from django.db import models


class ProviderType(models.TextChoices):
    """The field-service systems a company's routings can be pushed into."""

    MOCK = "mock", "Mock (in-process)"
    SERVICETITAN = "servicetitan", "ServiceTitan"
    CRM = "crm", "Field-service CRM (API v2)"
