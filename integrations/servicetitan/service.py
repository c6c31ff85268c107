"""Which ServiceTitan service a company gets. The real one is used when credentials are
configured, on the company (its provider account: the encrypted ``provider_credentials`` over
``provider_settings``) or globally (``SERVICETITAN_*`` settings);
otherwise the simulation. Pointing ``api_url`` and ``auth_url`` at the simulator's own slice of
the real API (``/servicetitan-sim/``) runs the real client against the simulation.
"""

from django.conf import settings

from integrations.servicetitan.client import ServiceTitanApi
from integrations.servicetitan.simulator.simulation import SimulatedServiceTitan
from integrations.servicetitan.types import ServiceTitanService

CREDENTIAL_KEYS = ("client_id", "client_secret", "app_key", "tenant_id", "booking_provider_id")


def servicetitan_config(options: dict | None = None) -> dict:
    """The ServiceTitan configuration for a company: its provider account's settings (credentials
    included) over the global ``SERVICETITAN`` settings."""
    merged = dict(settings.SERVICETITAN)
    merged.update({key: value for key, value in (options or {}).items() if value not in ("", None)})
    return merged


def servicetitan_service(options: dict | None = None) -> ServiceTitanService:
    """The real API client when credentials are configured, else the simulation."""
    config = servicetitan_config(options)
    if all(config.get(key) for key in CREDENTIAL_KEYS):
        return ServiceTitanApi(config)
    return SimulatedServiceTitan(config)
