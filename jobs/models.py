import re
import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from integrations.providers import ProviderAccount, ProviderType
from tradeengage.encryption import EncryptedJSONField

state_code_validator = RegexValidator(r"^[A-Z]{2}$", "State must be two uppercase letters.")


class SkillLevel(models.IntegerChoices):
    """Ordered so that "at or above the required level" is a plain ``>=``."""

    BASIC = 1, "basic"
    INTERMEDIATE = 2, "intermediate"
    EXPERT = 3, "expert"

    @classmethod
    def from_name(cls, name: str) -> "SkillLevel":
        return {level.label: level for level in cls}[name]


class Plan(models.TextChoices):
    FREE = "free", "Free"
    PRO = "pro", "Pro"
    ENTERPRISE = "enterprise", "Enterprise"


class Category(models.Model):
    """A job category (plumbing, hvac, ...). Managed in the admin; jobs must name one of these."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["slug"]
        verbose_name_plural = "categories"

    def __str__(self):
        return self.slug


class Skill(models.Model):
    """A trade skill. Managed in the admin; jobs may only require skills listed here."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    category = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="skills",
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class Company(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    is_active = models.BooleanField(default=True)
    accepts_jobs = models.BooleanField(
        default=True,
        help_text="Off to stop routing new jobs here without deactivating.",
    )
    primary_category = models.ForeignKey(
        Category,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="companies",
        help_text="The trade the company mainly works in; matching favours it for that category.",
    )
    plan = models.CharField(max_length=20, choices=Plan.choices, default=Plan.FREE)
    leads_per_report = models.PositiveIntegerField(default=10)
    send_day = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(31)],
        help_text="Day of the month the company's report is sent (1-31; end of short months).",
    )
    notification_email = models.EmailField(max_length=255, blank=True)
    provider_type = models.CharField(
        max_length=20, choices=ProviderType.choices, blank=True, default=""
    )
    provider_settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="Options of its field-service system (URLs, the mock's behaviour); no secrets.",
    )
    # Secrets (integrations.registry.credential_keys()) are encrypted at rest, apart from the
    # plain options: never logged, never served by an API, write-only in the admin.
    provider_credentials = EncryptedJSONField(default=dict, blank=True)
    open_routing_count = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Routings not yet completed; ties in matching go to lower load.",
    )
    last_processed_at = models.DateTimeField(
        null=True, blank=True, help_text="When its last report run (client processing) ended."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "companies"
        constraints = [
            models.CheckConstraint(
                condition=Q(send_day__gte=1) & Q(send_day__lte=31),
                name="company_send_day_1_31",
            ),
        ]

    def __str__(self):
        return self.name

    def provider_account(self) -> ProviderAccount:
        """What its provider is built from: the credentials merged over the settings, so a
        provider reads one set of options, secrets included."""
        return ProviderAccount(
            company_id=self.id,
            company_name=self.name,
            provider_type=self.provider_type,
            settings={**(self.provider_settings or {}), **(self.provider_credentials or {})},
        )


class ServiceArea(models.Model):
    """Where a company works: a ZIP prefix (``627`` covers 627xx) or a whole state.

    Matching ranks companies serving the job's ZIP, then its state, above all others, and finds
    them through the (kind, code) index, so its cost follows the local network.
    """

    class Kind(models.TextChoices):
        ZIP_PREFIX = "zip_prefix", "ZIP prefix"
        STATE = "state", "State"

    company = models.ForeignKey(
        Company, on_delete=models.CASCADE, related_name="service_areas", db_index=False
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    code = models.CharField(
        max_length=10, help_text="A state code (CA) or ZIP prefix digits (902)."
    )

    class Meta:
        ordering = ["kind", "code"]
        constraints = [
            models.UniqueConstraint(fields=["company", "kind", "code"], name="unique_service_area"),
        ]
        indexes = [models.Index(fields=["kind", "code", "company"], name="service_area_lookup_idx")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.code}"

    def clean(self):
        self.code = (self.code or "").strip().upper()
        if self.kind == self.Kind.STATE and not re.fullmatch(r"[A-Z]{2}", self.code):
            raise ValidationError({"code": "A state is two letters, e.g. CA."})
        if self.kind == self.Kind.ZIP_PREFIX and not re.fullmatch(r"[0-9]{1,10}", self.code):
            raise ValidationError({"code": "A ZIP prefix is 1 to 10 digits, e.g. 902."})


class CompanySkill(models.Model):
    # Both foreign keys lead an index below (unique and matching); no index of their own.
    company = models.ForeignKey(
        Company, on_delete=models.CASCADE, related_name="skills", db_index=False
    )
    skill = models.ForeignKey(
        Skill, on_delete=models.PROTECT, related_name="company_skills", db_index=False
    )
    level = models.PositiveSmallIntegerField(choices=SkillLevel.choices, default=SkillLevel.BASIC)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "skill"], name="unique_company_skill"),
        ]
        # Matching reads (skill, level >= x) ranges and only needs company_id from them.
        indexes = [
            models.Index(fields=["skill", "level", "company"], name="companyskill_match_idx")
        ]

    def __str__(self):
        return f"{self.company} - {self.skill} ({self.get_level_display()})"


class SkillCoverage(models.Model):
    """Matching's index of who works where with what: one row per company, area it serves and
    skill it holds, derived from ``ServiceArea`` and ``CompanySkill`` and kept in step with them
    by ``jobs.coverage``. One range scan of its index finds the companies near a job that hold
    its skills, however large the network and the state."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    area = models.CharField(max_length=24, help_text='"state:CA" or "zip_prefix:902".')
    skill = models.ForeignKey(Skill, on_delete=models.CASCADE, related_name="+", db_index=False)
    level = models.PositiveSmallIntegerField(choices=SkillLevel.choices)

    class Meta:
        verbose_name_plural = "skill coverage"
        # Rows are unique per (company, area, skill) because areas and skills are.
        indexes = [
            models.Index(fields=["area", "skill", "level", "company"], name="coverage_match_idx")
        ]

    def __str__(self):
        return f"{self.company_id} {self.area} {self.skill_id}"


class Technician(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="technicians")
    name = models.CharField(max_length=255)
    email = models.EmailField(max_length=255, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class JobStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    summary = models.CharField(max_length=1000)
    street = models.CharField(max_length=255)
    city = models.CharField(max_length=100)
    state = models.CharField(max_length=2, validators=[state_code_validator])
    zip_code = models.CharField(max_length=10)
    homeowner_name = models.CharField(max_length=255)
    homeowner_phone = models.CharField(max_length=20, blank=True)
    homeowner_email = models.EmailField(max_length=255, blank=True)
    created_by_company = models.ForeignKey(
        Company, on_delete=models.PROTECT, related_name="requested_jobs"
    )
    created_by_technician = models.ForeignKey(
        Technician, on_delete=models.PROTECT, related_name="identified_jobs"
    )
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.PROTECT, related_name="jobs"
    )
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.PENDING)
    revenue = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    correlation_id = models.CharField(
        max_length=128,
        blank=True,
        editable=False,
        help_text="The id of the request that created the job, carried into its syncs' log "
        "lines and provider calls: one id finds the job's whole story.",
    )
    # Seed 003's ingestion: the integrator's own id of the job in the system it came from. A
    # company's (source, external_id) names one job, however often or concurrently it is sent.
    source = models.CharField(
        max_length=100,
        blank=True,
        default="",
        db_default="",
        help_text="The integrator's system the job came from, for a job ingested in a batch.",
    )
    external_id = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        help_text="The job's id in that system; unique per company and source.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="job_newest_first_idx"),
            models.Index(fields=["status", "created_at"], name="job_status_created_idx"),
            models.Index(fields=["state", "zip_code"], name="job_area_idx"),
            # ZIP-prefix lookups (zip_code LIKE '606%') of client processing's leads.
            models.Index(
                fields=["zip_code"], opclasses=["varchar_pattern_ops"], name="job_zip_prefix_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(revenue__isnull=True) | Q(revenue__gte=0),
                name="job_revenue_not_negative",
            ),
            # The index that ingestion's duplicate lookups read, and what keeps two racing
            # batches from creating one external id twice.
            models.UniqueConstraint(
                fields=["created_by_company", "source", "external_id"],
                condition=Q(external_id__isnull=False),
                name="job_external_id_once",
            ),
        ]

    def __str__(self):
        return f"{self.summary[:60]} ({self.city}, {self.state})"


class JobSkill(models.Model):
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="required_skills", db_index=False
    )
    skill = models.ForeignKey(Skill, on_delete=models.PROTECT, related_name="job_skills")
    level = models.PositiveSmallIntegerField(choices=SkillLevel.choices, default=SkillLevel.BASIC)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["job", "skill"], name="unique_job_skill")]

    def __str__(self):
        return f"{self.skill} ({self.get_level_display()})"


class IngestionStatus(models.TextChoices):
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors", "Completed with errors"


class IngestionBatch(models.Model):
    """One ``POST /api/v1/ingestion/jobs`` (seed 003 "Job Ingestion"): its jobs are items,
    created by workers through the same job creation as ``POST /api/v1/jobs/``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(
        Company,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="ingestion_batches",
        help_text="The company whose key sent it; empty when an ops key did.",
    )
    submitted_by = models.CharField(max_length=100, help_text="The API key that sent it.")
    source = models.CharField(max_length=100)
    status = models.CharField(
        max_length=30, choices=IngestionStatus.choices, default=IngestionStatus.PROCESSING
    )
    jobs_received = models.PositiveIntegerField()
    jobs_queued = models.PositiveIntegerField(help_text="Items that passed validation.")
    correlation_id = models.CharField(max_length=128, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "ingestion batches"
        indexes = [models.Index(fields=["company", "-created_at"], name="ingestion_company_idx")]

    def __str__(self):
        return f"{self.source}: {self.jobs_received} jobs ({self.status})"


class IngestionItemStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    CREATED = "created", "Created"
    DUPLICATE = "duplicate", "Duplicate"
    INVALID = "invalid", "Invalid"


class IngestionItem(models.Model):
    """One job of a batch, and what came of it: the job it created, the job a duplicate
    external id made before, or its errors in seed 000's shape (``[{field, message}]``)."""

    batch = models.ForeignKey(
        IngestionBatch, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    position = models.PositiveIntegerField(help_text="Its index in the batch's jobs, from 0.")
    external_id = models.CharField(max_length=255, blank=True)
    payload = models.JSONField(help_text="The job as validated, to be created by a worker.")
    status = models.CharField(
        max_length=20, choices=IngestionItemStatus.choices, default=IngestionItemStatus.QUEUED
    )
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    errors = models.JSONField(default=list, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "position"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "position"], name="ingestion_item_once")
        ]

    def __str__(self):
        return f"{self.position}: {self.external_id} ({self.status})"
