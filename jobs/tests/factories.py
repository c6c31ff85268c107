import factory

from jobs.coverage import coverage_rebuild
from jobs.models import (
    Category,
    Company,
    CompanySkill,
    Job,
    JobSkill,
    ServiceArea,
    Skill,
    SkillLevel,
    Technician,
)


def skill(slug: str) -> Skill:
    """A skill seeded by migration 0002; tests never create their own."""
    return Skill.objects.get(slug=slug)


def category(slug: str) -> Category:
    """A category seeded by migration 0002."""
    return Category.objects.get(slug=slug)


def service_area(company: Company, code: str) -> ServiceArea:
    """An unsaved area from a short code: "IL" a state, "627" a ZIP prefix."""
    kind = ServiceArea.Kind.ZIP_PREFIX if code.isdigit() else ServiceArea.Kind.STATE
    return ServiceArea(company=company, kind=kind, code=code)


class CompanyFactory(factory.django.DjangoModelFactory):
    """``CompanyFactory(skills={"plumbing": SkillLevel.EXPERT}, service_areas=["IL", "627"])``."""

    class Meta:
        model = Company
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Company {n}")

    @factory.post_generation
    def skills(company, create, extracted, **kwargs):
        if create and extracted:
            CompanySkill.objects.bulk_create(
                CompanySkill(company=company, skill=skill(slug), level=level)
                for slug, level in extracted.items()
            )
            coverage_rebuild(company_ids=[company.id])

    @factory.post_generation
    def service_areas(company, create, extracted, **kwargs):
        if create and extracted:
            ServiceArea.objects.bulk_create(service_area(company, code) for code in extracted)
            coverage_rebuild(company_ids=[company.id])


class CompanySkillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CompanySkill

    company = factory.SubFactory(CompanyFactory)
    skill = factory.LazyFunction(lambda: skill("plumbing"))
    level = SkillLevel.BASIC


class ServiceAreaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceArea

    company = factory.SubFactory(CompanyFactory)
    kind = ServiceArea.Kind.STATE
    code = "IL"


class TechnicianFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Technician

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Technician {n}")
    email = factory.LazyAttribute(lambda t: f"{t.name.lower().replace(' ', '.')}@example.com")


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    summary = factory.Sequence(lambda n: f"Job {n}: fix a leaky faucet")
    street = "456 Oak Avenue"
    city = "Springfield"
    state = "IL"
    zip_code = "62701"
    homeowner_name = "Jane Smith"
    homeowner_phone = "(555) 987-6543"
    homeowner_email = "jane.smith@email.com"
    created_by_technician = factory.SubFactory(TechnicianFactory)
    created_by_company = factory.SelfAttribute("created_by_technician.company")
    category = None


class JobSkillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobSkill

    job = factory.SubFactory(JobFactory)
    skill = factory.LazyFunction(lambda: skill("plumbing"))
    level = SkillLevel.BASIC
