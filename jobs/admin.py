from django.contrib import admin

from jobs.models import (
    Category,
    Company,
    CompanySkill,
    Job,
    JobSkill,
    ServiceArea,
    Skill,
    Technician,
)
from routing.models import JobRouting


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


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
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
    readonly_fields = ["id", "open_routing_count", "created_at", "updated_at"]
    inlines = [ServiceAreaInline, CompanySkillInline, TechnicianInline]
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
        ("Load", {"fields": ["open_routing_count", "created_at", "updated_at"]}),
    ]


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
    search_fields = ["=id", "homeowner_name", "homeowner_email", "summary"]
    list_select_related = ["category", "created_by_company"]
    autocomplete_fields = ["created_by_company", "created_by_technician"]
    readonly_fields = ["id", "created_at", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [JobSkillInline, JobRoutingInline]

    @admin.display(description="summary", ordering="summary")
    def summary_short(self, job):
        return job.summary[:80]
