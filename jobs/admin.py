from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.html import format_html_join

from integrations.providers import ProviderError, ProviderNotConfigured, ProviderType
from integrations.registry import credential_keys
from integrations.servicetitan.connection import ERROR, SUCCESS, servicetitan_connection_test
from jobs.models import (
    Category,
    Company,
    CompanySkill,
    IngestionBatch,
    IngestionItem,
    Job,
    JobSkill,
    ServiceArea,
    Skill,
    Technician,
)
from jobs.services import company_crm_connect
from routing.models import JobRouting
from tradeengage.admin import ViewOnlyAdminMixin


class StateFilter(admin.SimpleListFilter):
    title = "service state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        states = (
            ServiceArea.objects.filter(kind=ServiceArea.Kind.STATE)
            .order_by("code")
            .values_list("code", flat=True)
            .distinct()
        )
        return [(state, state) for state in states]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(
                service_areas__kind=ServiceArea.Kind.STATE, service_areas__code=self.value()
            ).distinct()
        return queryset


class ServiceAreaInline(admin.TabularInline):
    model = ServiceArea
    extra = 1


class CompanySkillInline(admin.TabularInline):
    model = CompanySkill
    extra = 1
    autocomplete_fields = ["skill"]


class TechnicianInline(admin.TabularInline):
    model = Technician
    extra = 0
    fields = ["name", "email", "phone", "is_active"]


# A connection report's levels as the admin's messages.
CONNECTION_MESSAGE_LEVELS = {SUCCESS: messages.SUCCESS, ERROR: messages.ERROR}


# One write-only form field per provider secret: "credential_client_secret" for "client_secret".
CREDENTIAL_FIELDS = {f"credential_{key}": key for key in credential_keys()}


class CompanyFormBase(forms.ModelForm):
    """Provider credentials are write-only: a blank field keeps the stored value, a filled one
    replaces it, and "Remove" deletes it; no stored secret is ever put on the page (nor is one
    just typed, when the form comes back with an error). Secrets are refused in the plain
    ``provider_settings``. (The admin gives it its model and fields, from the fieldsets.)"""

    credentials_clear = forms.MultipleChoiceField(
        label="Remove credentials",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Delete the ticked credentials (a new value typed above is kept instead).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.provider_credentials or {}
        self.fields["credentials_clear"].choices = [
            (key, key) for key in credential_keys() if key in stored
        ]

    def clean_provider_settings(self):
        provider_settings = self.cleaned_data.get("provider_settings")
        if isinstance(provider_settings, dict):
            secrets = [key for key in credential_keys() if key in provider_settings]
            if secrets:
                raise ValidationError(
                    f"Secrets do not belong in the provider settings, which are stored in plain "
                    f"text: remove {', '.join(secrets)} here and enter "
                    f"{'it' if len(secrets) == 1 else 'them'} in the credential fields below, "
                    "which are stored encrypted."
                )
        return provider_settings

    def provider_credentials(self) -> dict:
        credentials = dict(self.instance.provider_credentials or {})
        for key in self.cleaned_data.get("credentials_clear") or []:
            credentials.pop(key, None)
        for name, key in CREDENTIAL_FIELDS.items():
            if self.cleaned_data.get(name):
                credentials[key] = self.cleaned_data[name]
        return credentials

    def save(self, commit=True):
        self.instance.provider_credentials = self.provider_credentials()
        return super().save(commit)


def credential_form_field(key: str) -> forms.CharField:
    return forms.CharField(
        label=key,
        required=False,
        # new-password: browsers must not fill in the admin's own saved password.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: leave blank to keep the stored value.",
    )


CompanyAdminForm = type(
    "CompanyAdminForm",
    (CompanyFormBase,),
    {name: credential_form_field(key) for name, key in CREDENTIAL_FIELDS.items()},
)


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    form = CompanyAdminForm
    list_display = [
        "name",
        "is_active",
        "accepts_jobs",
        "plan",
        "primary_category",
        "provider_type",
        "open_routing_count",
    ]
    list_filter = [
        "is_active",
        "accepts_jobs",
        "plan",
        StateFilter,
        "primary_category",
        "provider_type",
    ]
    search_fields = ["name", "=id", "notification_email"]
    readonly_fields = [
        "id",
        "open_routing_count",
        "created_at",
        "updated_at",
        "credentials_stored",
    ]
    inlines = [ServiceAreaInline, CompanySkillInline, TechnicianInline]
    actions = ["test_connection", "connect_webhooks"]
    fieldsets = [
        (
            None,
            {"fields": ["id", "name", "is_active", "accepts_jobs", "primary_category"]},
        ),
        (
            "Plan and reports",
            {"fields": ["plan", "leads_per_report", "send_day", "notification_email"]},
        ),
        ("Field-service system", {"fields": ["provider_type", "provider_settings"]}),
        (
            "Provider credentials (encrypted, write-only)",
            {"fields": ["credentials_stored", *CREDENTIAL_FIELDS, "credentials_clear"]},
        ),
        ("Load", {"fields": ["open_routing_count", "created_at", "updated_at"]}),
    ]

    @admin.display(description="stored")
    def credentials_stored(self, company):
        """Which credentials are set, never their values."""
        stored = company.provider_credentials if company else {}
        return format_html_join(
            "",
            "<div>{}: {}</div>",
            ((key, "set" if stored.get(key) else "not set") for key in credential_keys()),
        )

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset):
        """Each selected ServiceTitan company's connection report, one message a check."""
        for company in queryset.select_related("primary_category"):
            if company.provider_type != ProviderType.SERVICETITAN:
                provider = company.get_provider_type_display() if company.provider_type else "none"
                self.message_user(
                    request,
                    f"{company.name}: Test connection checks ServiceTitan accounts; this "
                    f"company's field-service system is {provider}.",
                    messages.WARNING,
                )
                continue
            report = servicetitan_connection_test(
                options=company.provider_account().settings, trades=company_trades(company)
            )
            for check in report.checks:
                self.message_user(
                    request,
                    f"{company.name}: {check.message}",
                    CONNECTION_MESSAGE_LEVELS.get(check.level, messages.WARNING),
                )

    @admin.action(description="Connect (register webhooks)")
    def connect_webhooks(self, request, queryset):
        """Register our webhook receiver with each selected CRM company's account; its new
        webhook secret is stored encrypted and never shown."""
        base_url = request.build_absolute_uri("/")
        for company in queryset:
            if company.provider_type != ProviderType.CRM:
                provider = company.get_provider_type_display() if company.provider_type else "none"
                self.message_user(
                    request,
                    f"{company.name}: Connect registers webhooks with CRM accounts; this "
                    f"company's field-service system is {provider}.",
                    messages.WARNING,
                )
                continue
            try:
                webhook = company_crm_connect(company=company, base_url=base_url)
            except (ProviderError, ProviderNotConfigured) as exc:
                self.message_user(request, f"{company.name}: not connected: {exc}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{company.name}: connected; webhook {webhook.get('id') or '(no id)'} delivers "
                "to this site, its secret stored encrypted.",
                messages.SUCCESS,
            )


def company_trades(company: Company) -> list[str]:
    """The categories a company's jobs come in: its primary one, then its skills'."""
    skill_categories = (
        CompanySkill.objects.filter(company=company, skill__category__isnull=False)
        .order_by("skill__category__slug")
        .values_list("skill__category__slug", flat=True)
    )
    primary = [company.primary_category.slug] if company.primary_category else []
    return list(dict.fromkeys([*primary, *skill_categories]))


@admin.register(Technician)
class TechnicianAdmin(admin.ModelAdmin):
    list_display = ["name", "company", "email", "phone", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "email", "=id", "company__name"]
    list_select_related = ["company"]
    autocomplete_fields = ["company"]
    readonly_fields = ["id", "created_at"]


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["slug", "name"]
    search_fields = ["slug", "name"]


@admin.register(Skill)
class SkillAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "category"]
    list_filter = ["category"]
    search_fields = ["slug", "name"]


class JobSkillInline(admin.TabularInline):
    model = JobSkill
    extra = 0
    autocomplete_fields = ["skill"]


class JobRoutingInline(admin.TabularInline):
    model = JobRouting
    extra = 0
    can_delete = False
    fields = [
        "company",
        "sync_status",
        "matching_score",
        "external_id",
        "retry_count",
        "error_message",
    ]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "summary_short",
        "city",
        "state",
        "category",
        "status",
        "created_by_company",
        "created_at",
    ]
    list_filter = ["status", "category", "state"]
    search_fields = ["=id", "=external_id", "homeowner_name", "homeowner_email", "summary"]
    list_select_related = ["category", "created_by_company"]
    autocomplete_fields = ["created_by_company", "created_by_technician"]
    readonly_fields = ["id", "source", "external_id", "created_at", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [JobSkillInline, JobRoutingInline]

    @admin.display(description="summary", ordering="summary")
    def summary_short(self, job):
        return job.summary[:80]


class IngestionItemInline(admin.TabularInline):
    model = IngestionItem
    fields = ["position", "external_id", "status", "job", "errors", "processed_at"]
    readonly_fields = fields
    raw_id_fields = ["job"]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(IngestionBatch)
class IngestionBatchAdmin(ViewOnlyAdminMixin, admin.ModelAdmin):
    """Batches as their integrators sent them (seed 003 ingestion): read only."""

    list_display = [
        "id",
        "source",
        "company",
        "status",
        "jobs_received",
        "jobs_queued",
        "created_at",
        "completed_at",
    ]
    list_filter = ["status", "source"]
    search_fields = ["=id", "=items__external_id"]
    list_select_related = ["company"]
    date_hierarchy = "created_at"
    inlines = [IngestionItemInline]
