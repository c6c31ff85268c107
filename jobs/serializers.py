from django.core.validators import RegexValidator
from rest_framework import serializers

from jobs.models import JobStatus, SkillLevel
from tradeengage.fields import StrictCharField, StrictUUIDField

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


class JobListQuerySerializer(serializers.Serializer):
    skip = serializers.IntegerField(min_value=0, max_value=1_000_000_000, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)
