"""The "Test connection" report of a company's ServiceTitan account: whether its credentials
authenticate, whether its booking provider answers, whether every id of its mapping settings is
one of the tenant's (and active), and what its bookings would go without."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from integrations.providers import PermanentProviderError, ProviderError
from integrations.servicetitan.client import TENANT_SETTINGS, ServiceTitanApi
from integrations.servicetitan.mapping import BookingMapping, booking_mapping
from integrations.servicetitan.service import CREDENTIAL_KEYS, servicetitan_config

SUCCESS = "success"
WARNING = "warning"
ERROR = "error"

# How each of the tenant's settings lists is named in a message, one and many.
SETTINGS_NAMES = {
    "campaigns": ("campaign", "campaigns"),
    "business_units": ("business unit", "business units"),
    "job_types": ("active job type", "job types"),
    "job_cancel_reasons": ("job cancel reason", "job cancel reasons"),
}


@dataclass(frozen=True)
class ConnectionCheck:
    level: str  # SUCCESS, WARNING or ERROR
    message: str


@dataclass
class ConnectionReport:
    authenticated: bool = False
    checks: list[ConnectionCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(check.level == ERROR for check in self.checks)

    def add(self, level: str, message: str) -> None:
        self.checks.append(ConnectionCheck(level, message))


def servicetitan_connection_test(*, options: dict, trades: Sequence[str] = ()) -> ConnectionReport:
    """Test a company's ServiceTitan account, from its provider options (settings and
    credentials). ``trades`` are the company's trades (category slugs), to tell which of them
    would be booked without a business unit or a job type.

    Never raises for what ServiceTitan answers: every failure is a check of the report. Its
    messages carry ids, names and ServiceTitan's errors, never a credential."""
    report = ConnectionReport()
    config = servicetitan_config(options)
    missing = [key for key in CREDENTIAL_KEYS if not config.get(key)]
    if missing:
        report.add(ERROR, f"Not authenticated: {', '.join(missing)} not configured.")
        return report
    try:
        mapping = booking_mapping(config)
    except PermanentProviderError as exc:
        mapping = None
        for detail in exc.details:
            report.add(ERROR, f"Setting {detail['field']} {detail['message']}.")
    api = ServiceTitanApi(config)
    try:
        api.authenticate(fresh=True)
    except ProviderError as exc:
        report.add(ERROR, f"Not authenticated: {exc}")
        return report
    report.authenticated = True
    report.add(SUCCESS, f"Authenticated to ServiceTitan tenant {api.tenant}.")
    try:
        api.bookings_check()
        report.add(SUCCESS, f"Booking provider {api.booking_provider} answers.")
    except ProviderError as exc:
        report.add(ERROR, f"Booking provider {api.booking_provider} does not answer: {exc}")
    tenant_settings = {}
    for kind in TENANT_SETTINGS:
        try:
            tenant_settings[kind] = {
                str(record.get("id")): record for record in api.tenant_settings(kind)
            }
        except ProviderError as exc:
            report.add(ERROR, f"Could not read the tenant's {SETTINGS_NAMES[kind][1]}: {exc}")
    if mapping is not None:
        _check_configured_ids(report, mapping, tenant_settings, tenant=api.tenant)
        _check_unmapped(report, mapping, trades)
    _check_cancel_reason(report, api.cancel_reason_id, tenant_settings.get("job_cancel_reasons"))
    return report


def _check_configured_ids(
    report: ConnectionReport, mapping: BookingMapping, tenant_settings: dict, *, tenant: str
) -> None:
    configured = [
        ("campaign_id", mapping.campaign_id, "campaigns"),
        ("business_unit_id", mapping.business_unit_id, "business_units"),
        *(
            (f"business_units_by_zip[{prefix}]", unit, "business_units")
            for prefix, unit in mapping.business_units_by_zip.items()
        ),
        *(
            (f"business_units_by_trade[{trade}]", unit, "business_units")
            for trade, unit in mapping.business_units_by_trade.items()
        ),
        ("job_type_id", mapping.job_type_id, "job_types"),
        *(
            (f"job_types_by_category[{category}]", job_type, "job_types")
            for category, job_type in mapping.job_types_by_category.items()
        ),
    ]
    for setting, configured_id, kind in configured:
        if configured_id is None or kind not in tenant_settings:
            continue
        noun = SETTINGS_NAMES[kind][0]
        record = tenant_settings[kind].get(str(configured_id))
        if record is None:
            report.add(ERROR, f"{setting} {configured_id} is no {noun} of tenant {tenant}.")
        elif record.get("active") is False:
            report.add(ERROR, f"{setting} {configured_id} ({record.get('name')}) is inactive.")
        else:
            report.add(SUCCESS, f"{setting} {configured_id} is {noun} {record.get('name')}.")


def _check_unmapped(
    report: ConnectionReport, mapping: BookingMapping, trades: Sequence[str]
) -> None:
    if mapping.campaign_id is None:
        report.add(
            WARNING,
            "No campaign_id: bookings are sent without a campaign, for the office to choose one.",
        )
    if mapping.business_unit_id is None:
        unmapped = [trade for trade in trades if trade not in mapping.business_units_by_trade]
        for trade in unmapped:
            report.add(
                WARNING,
                f"No business unit for trade {trade} (no business_unit_id default): its bookings "
                "have none unless business_units_by_zip matches their ZIP.",
            )
        if not trades and not mapping.business_units_by_trade and not mapping.business_units_by_zip:
            report.add(WARNING, "No business unit configured: bookings are sent without one.")
    if mapping.job_type_id is None:
        unmapped = [trade for trade in trades if trade not in mapping.job_types_by_category]
        for trade in unmapped:
            report.add(
                WARNING,
                f"No job type for category {trade} (no job_type_id default): ServiceTitan would "
                'land its bookings as job type "Unknown".',
            )
        if not trades and not mapping.job_types_by_category:
            report.add(
                WARNING,
                'No job type configured: ServiceTitan would land bookings as job type "Unknown".',
            )


def _check_cancel_reason(
    report: ConnectionReport, cancel_reason_id: str, reasons: dict[str, dict] | None
) -> None:
    if reasons is None:
        return
    active = [reason for reason in reasons.values() if reason.get("active")]
    if cancel_reason_id:
        reason = reasons.get(cancel_reason_id)
        if reason is None or not reason.get("active"):
            state = "an inactive" if reason else "no"
            report.add(
                ERROR,
                f"cancel_reason_id {cancel_reason_id} is {state} job cancel reason: cancelling "
                "a job would be refused.",
            )
        else:
            report.add(
                SUCCESS,
                f"cancel_reason_id {cancel_reason_id} is job cancel reason {reason.get('name')}.",
            )
    elif active:
        report.add(
            WARNING,
            f"No cancel_reason_id: cancellations use the first active job cancel reason, "
            f"{active[0].get('id')} ({active[0].get('name')}).",
        )
    else:
        report.add(ERROR, "The tenant has no active job cancel reason: no job can be cancelled.")
