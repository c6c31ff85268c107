from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.models import IngestionStatus, JobStatus, ServiceArea, SkillLevel
from tradeengage.fields import StrictCharField, StrictUUIDField
from tradeengage.schema import FieldErrorSerializer

LEVEL_NAMES = [level.label for level in SkillLevel]
MAX_SKILLS_PER_JOB = 20


class AddressSerializer(serializers.Serializer):
    street = StrictCharField(max_length=255)
    city = StrictCharField(max_length=100)
    state = serializers.RegexField(
        r"^[A-Z]{2}$",
        error_messages={"invalid": "State must be exactly two uppercase letters, e.g. CA."},
    )
    zip_code = StrictCharField(
        max_length=10,
        validators=[
            RegexValidator(
                r"^[0-9]{5}(-[0-9]{4})?$",
                "A US ZIP code: 5 digits, or ZIP+4, e.g. 62701 or 62701-1234.",
            )
        ],
    )


class HomeownerSerializer(serializers.Serializer):
    name = StrictCharField(max_length=255)
    phone = StrictCharField(max_length=20, required=False, allow_blank=True, allow_null=True)
    email = serializers.EmailField(
        max_length=255, required=False, allow_blank=True, allow_null=True
    )


class JobCreateSerializer(serializers.Serializer):
    summary = StrictCharField(max_length=1000)
    address = AddressSerializer()
    homeowner = HomeownerSerializer()
    created_by_company_id = StrictUUIDField()
    created_by_technician_id = StrictUUIDField()
    required_skills = serializers.ListField(
        child=StrictCharField(max_length=50),
        required=False,
        allow_empty=False,
        # The schema's minItems: allow_empty alone leaves it out.
        min_length=1,
        max_length=MAX_SKILLS_PER_JOB,
    )
    skill_levels = serializers.DictField(
        child=serializers.ChoiceField(choices=LEVEL_NAMES), required=False
    )
    category = StrictCharField(max_length=100, required=False, allow_null=True)

    def validate_required_skills(self, skills):
        duplicates = sorted({s for s in skills if skills.count(s) > 1})
        if duplicates:
            raise serializers.ValidationError(f"Duplicate skill(s): {', '.join(duplicates)}.")
        return skills

    def validate(self, data):
        skills = data.get("required_skills") or []
        levels = data.get("skill_levels") or {}
        stray = [name for name in levels if name not in skills]
        if stray:
            raise serializers.ValidationError(
                {f"skill_levels.{name}": "Not listed in required_skills." for name in stray}
            )
        # One ordered mapping, skill -> level, with basic where no level was given.
        data["skill_levels"] = {name: levels.get(name, "basic") for name in skills}
        data.pop("required_skills", None)
        return data


class AddressOutSerializer(serializers.Serializer):
    street = serializers.CharField()
    city = serializers.CharField()
    state = serializers.CharField()
    zip_code = serializers.CharField()


class HomeownerOutSerializer(serializers.Serializer):
    name = serializers.CharField()
    phone = serializers.CharField(allow_null=True)
    email = serializers.CharField(allow_null=True)


class JobSerializer(serializers.Serializer):
    """A job as seed 000 documents it. The fields describe the schema; ``to_representation``
    builds the body directly, since this runs on every job created or listed."""

    id = serializers.UUIDField()
    summary = serializers.CharField()
    address = AddressOutSerializer()
    homeowner = HomeownerOutSerializer()
    created_by_company_id = serializers.UUIDField()
    created_by_technician_id = serializers.UUIDField()
    required_skills = serializers.ListField(child=serializers.CharField())
    skill_levels = serializers.DictField(child=serializers.ChoiceField(choices=LEVEL_NAMES))
    category = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=JobStatus.choices)
    revenue = serializers.DecimalField(
        max_digits=12, decimal_places=2, allow_null=True, coerce_to_string=False
    )
    completed_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, job):
        skill_levels = self.context.get("skill_levels")
        if skill_levels is None:
            skill_levels = {
                js.skill.slug: SkillLevel(js.level).label for js in job.required_skills.all()
            }
        if "category" in self.context:
            category = self.context["category"]
        else:
            category = job.category.slug if job.category_id else None
        return {
            "id": str(job.id),
            "summary": job.summary,
            "address": {
                "street": job.street,
                "city": job.city,
                "state": job.state,
                "zip_code": job.zip_code,
            },
            "homeowner": {
                "name": job.homeowner_name,
                "phone": job.homeowner_phone or None,
                "email": job.homeowner_email or None,
            },
            "created_by_company_id": str(job.created_by_company_id),
            "created_by_technician_id": str(job.created_by_technician_id),
            "required_skills": list(skill_levels),
            "skill_levels": skill_levels,
            "category": category,
            "status": job.status,
            "revenue": float(job.revenue) if job.revenue is not None else None,
            "completed_at": _datetime(job.completed_at),
            "created_at": _datetime(job.created_at),
            "updated_at": _datetime(job.updated_at),
        }


_datetime_field = serializers.DateTimeField()


def _datetime(value):
    return _datetime_field.to_representation(value) if value is not None else None


# Batch ingestion (seed 003 "Job Ingestion")

SOURCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"


class IngestionItemSerializer(JobCreateSerializer):
    """One job of a batch: the job-create fields and its id in the integrator's system."""

    external_id = StrictCharField(max_length=255)

    def validate(self, data):
        data = super().validate(data)
        # JSON-ready, to wait in the database for a worker.
        for name in ("created_by_company_id", "created_by_technician_id"):
            data[name] = str(data[name])
        return data


class IngestionRequestSerializer(serializers.Serializer):
    """The batch's shape; each job is validated on its own (``IngestionItemSerializer``), so a
    malformed one never fails the batch."""

    source = StrictCharField(
        max_length=100,
        validators=[
            RegexValidator(SOURCE_PATTERN, "1 to 100 letters, digits, _ . : or -, e.g. custom.")
        ],
        help_text="The system the jobs come from (letters, digits, _ . : -). A company's "
        "(source, external_id) names one job.",
    )
    jobs = serializers.ListField(
        child=serializers.JSONField(),
        min_length=1,
        help_text="The jobs, each the body of POST /api/v1/jobs/ with an external_id.",
    )


class IngestionItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The job's position in the batch, from 0.")
    external_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["queued", "created", "duplicate", "invalid"])
    job_id = serializers.UUIDField(allow_null=True, help_text="The job it created.")
    duplicate_of = serializers.UUIDField(
        allow_null=True,
        help_text="The job made earlier with the same source and external_id.",
    )
    errors = FieldErrorSerializer(many=True, help_text="Why it is invalid (seed 000).")


class IngestionCountsSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    invalid = serializers.IntegerField()


class IngestionAcceptedSerializer(serializers.Serializer):
    ingestion_id = serializers.UUIDField()
    jobs_received = serializers.IntegerField()
    jobs_queued = serializers.IntegerField(help_text="The jobs that passed validation.")
    status = serializers.ChoiceField(choices=IngestionStatus.choices)


class IngestionBatchSerializer(IngestionAcceptedSerializer):
    source = serializers.CharField()
    counts = IngestionCountsSerializer()
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    items = IngestionItemResultSerializer(many=True)

    def to_representation(self, batch):
        items = self.context["items"]
        return {
            "ingestion_id": str(batch.id),
            "source": batch.source,
            "status": batch.status,
            "jobs_received": batch.jobs_received,
            "jobs_queued": batch.jobs_queued,
            "counts": self.context["counts"],
            "created_at": _datetime(batch.created_at),
            "completed_at": _datetime(batch.completed_at),
            "items": [
                {
                    "index": position,
                    "external_id": external_id,
                    "status": status,
                    "job_id": str(job_id) if job_id and status == "created" else None,
                    "duplicate_of": str(job_id) if job_id and status == "duplicate" else None,
                    "errors": errors,
                }
                for position, external_id, status, job_id, errors in items
            ],
        }


class JobListQuerySerializer(serializers.Serializer):
    skip = serializers.IntegerField(min_value=0, max_value=1_000_000_000, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)


# Matching (seed 003)

# How many job ids one POST /api/v1/matching/jobs may name.
MAX_MATCHING_JOB_IDS = 100
MAX_PROFILE_SKILLS = 100
MAX_PROFILE_SERVICE_AREAS = 500
# Recomputing a job's candidates ranks skip + limit of them.
MAX_MATCHES_SKIP = 10_000


class JobMatchesQuerySerializer(JobListQuerySerializer):
    skip = serializers.IntegerField(min_value=0, max_value=MAX_MATCHES_SKIP, default=0)


class MatchCandidateSerializer(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 for the best candidate.")
    company_id = serializers.UUIDField()
    company_name = serializers.CharField()
    score = serializers.FloatField()
    matched_skills = serializers.ListField(child=serializers.CharField())
    missing_skills = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField()
    routed = serializers.BooleanField(help_text="Whether the company holds a routing of the job.")
    routing_id = serializers.UUIDField(allow_null=True)


class StoredMatchSerializer(serializers.Serializer):
    """A routing of the job with the explanation stored on it when it was made."""

    routing_id = serializers.UUIDField()
    company_id = serializers.UUIDField()
    company_name = serializers.CharField()
    sync_status = serializers.CharField()
    score = serializers.FloatField()
    matched_skills = serializers.ListField(child=serializers.CharField())
    missing_skills = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField()
    routed_by = serializers.CharField(
        help_text="Who routed it by hand (a manual route); empty when matching did."
    )
    routed_at = serializers.DateTimeField()


class JobMatchesSerializer(serializers.Serializer):
    job_id = serializers.UUIDField()
    recomputed_at = serializers.DateTimeField(help_text="When the candidates were ranked.")
    note = serializers.CharField()
    skip = serializers.IntegerField()
    limit = serializers.IntegerField()
    candidates = MatchCandidateSerializer(many=True)
    routings = StoredMatchSerializer(many=True)


class MatchingJobsRequestSerializer(serializers.Serializer):
    # Any string: one that is no job id is reported as not found, as sent.
    job_ids = serializers.ListField(
        child=StrictCharField(max_length=100, allow_blank=True, trim_whitespace=False),
        allow_empty=False,
        min_length=1,
        max_length=MAX_MATCHING_JOB_IDS,
    )


class JobMatchSerializer(serializers.Serializer):
    job_id = serializers.UUIDField()
    score = serializers.FloatField()
    reason = serializers.CharField()
    matched_skills = serializers.ListField(child=serializers.CharField())
    missing_skills = serializers.ListField(child=serializers.CharField())


class MatchingJobsSerializer(serializers.Serializer):
    matches = JobMatchSerializer(many=True)
    not_found = serializers.ListField(
        child=serializers.CharField(),
        help_text="The ids, as sent and in their order, of jobs that do not exist or that the "
        "key's company may not see: the two are not told apart.",
    )


class HeldSkillSerializer(serializers.Serializer):
    skill = StrictCharField(max_length=50)
    level = serializers.ChoiceField(choices=LEVEL_NAMES, default="basic")


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "maxLength": 50, "description": "A skill slug, held at basic."},
            {
                "type": "object",
                "properties": {
                    "skill": {"type": "string", "maxLength": 50},
                    "level": {"type": "string", "enum": LEVEL_NAMES, "default": "basic"},
                },
                "required": ["skill"],
            },
        ]
    }
)
class HeldSkillField(serializers.Field):
    """A skill and its level, ``{"skill": "plumbing", "level": "expert"}``, or seed 003's plain
    ``"plumbing"``, which is held at basic."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = {"skill": data}
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                'A skill is a slug or {"skill": <slug>, "level": <level>}.'
            )
        held = HeldSkillSerializer(data=data)
        held.is_valid(raise_exception=True)
        return held.validated_data

    def to_representation(self, value):
        return value


class ServiceAreaInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ServiceArea.Kind.choices)
    code = StrictCharField(max_length=10, help_text="A state (CA) or ZIP prefix digits (902).")

    def validate(self, data):
        area = ServiceArea(kind=data["kind"], code=data["code"])
        try:
            area.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return {"kind": area.kind, "code": area.code}


class MatchingProfileUpdateSerializer(serializers.Serializer):
    """The whole profile: what it leaves out is gone after the update."""

    skills = serializers.ListField(child=HeldSkillField(), max_length=MAX_PROFILE_SKILLS)
    service_areas = serializers.ListField(
        child=ServiceAreaInputSerializer(), max_length=MAX_PROFILE_SERVICE_AREAS
    )
    primary_category = StrictCharField(max_length=100, allow_null=True)

    def validate_skills(self, skills):
        slugs = [held["skill"] for held in skills]
        duplicates = sorted({slug for slug in slugs if slugs.count(slug) > 1})
        if duplicates:
            raise serializers.ValidationError(f"Duplicate skill(s): {', '.join(duplicates)}.")
        return {held["skill"]: held["level"] for held in skills}

    def validate_service_areas(self, areas):
        pairs = [(area["kind"], area["code"]) for area in areas]
        duplicates = sorted(
            {f"{kind} {code}" for kind, code in pairs if pairs.count((kind, code)) > 1}
        )
        if duplicates:
            raise serializers.ValidationError(f"Duplicate area(s): {', '.join(duplicates)}.")
        return pairs


class HeldSkillOutSerializer(serializers.Serializer):
    skill = serializers.CharField()
    level = serializers.ChoiceField(choices=LEVEL_NAMES)


class ServiceAreaOutSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ServiceArea.Kind.choices)
    code = serializers.CharField()


class MatchingProfileSerializer(serializers.Serializer):
    company_id = serializers.UUIDField(source="id")
    company_name = serializers.CharField(source="name")
    skills = serializers.SerializerMethodField()
    service_areas = ServiceAreaOutSerializer(many=True)
    primary_category = serializers.CharField(source="primary_category.slug", allow_null=True)
    updated_at = serializers.DateTimeField()

    @extend_schema_field(HeldSkillOutSerializer(many=True))
    def get_skills(self, company) -> list[dict]:
        held = sorted(company.skills.all(), key=lambda company_skill: company_skill.skill.slug)
        return [
            {"skill": company_skill.skill.slug, "level": SkillLevel(company_skill.level).label}
            for company_skill in held
        ]
