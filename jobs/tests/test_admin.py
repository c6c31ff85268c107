import pytest
from django.urls import reverse

from jobs.ingestion import ItemIn, ingestion_batch_create
from jobs.models import Company, ServiceArea, SkillCoverage, SkillLevel
from jobs.tests.factories import CompanyFactory, JobFactory, JobSkillFactory, TechnicianFactory
from routing.tests.factories import JobRoutingFactory, OutboxEventFactory

CHANGELISTS = [
    "jobs_company",
    "jobs_technician",
    "jobs_skill",
    "jobs_category",
    "jobs_job",
    "routing_jobrouting",
    "routing_outboxevent",
    "django_celery_beat_periodictask",
]


@pytest.fixture
def network(db):
    company = CompanyFactory(service_areas=["IL", "627"], skills={"plumbing": SkillLevel.EXPERT})
    technician = TechnicianFactory(company=company)
    job = JobFactory(created_by_company=company, created_by_technician=technician)
    JobSkillFactory(job=job)
    routing = JobRoutingFactory(job=job, company=CompanyFactory())
    OutboxEventFactory(aggregate_id=routing.id)
    return company, job


@pytest.mark.parametrize("model", CHANGELISTS)
def test_every_admin_list_renders(ops_client, network, model):
    response = ops_client.get(reverse(f"admin:{model}_changelist"))

    assert response.status_code == 200


@pytest.mark.parametrize(
    "query",
    ["?is_active__exact=1", "?plan__exact=pro", "?state=IL", "?q=Company", "?state=ZZ"],
)
def test_company_list_filters_and_search(ops_client, network, query):
    response = ops_client.get(reverse("admin:jobs_company_changelist") + query)

    assert response.status_code == 200


def test_job_list_searches_by_homeowner_and_filters_by_status(ops_client, network):
    _, job = network
    url = reverse("admin:jobs_job_changelist")

    assert job.summary[:40] in ops_client.get(url + f"?q={job.homeowner_name}").text
    assert ops_client.get(url + "?status__exact=pending").status_code == 200


def test_company_and_job_pages_render_their_inlines(ops_client, network):
    company, job = network

    company_page = ops_client.get(reverse("admin:jobs_company_change", args=[company.id]))
    job_page = ops_client.get(reverse("admin:jobs_job_change", args=[job.id]))

    assert company_page.status_code == 200
    assert "Service areas" in company_page.text
    assert job_page.status_code == 200
    assert "Job routings" in job_page.text


def test_ops_can_add_a_company_with_a_service_area_and_a_skill(ops_client, db):
    from jobs.tests.factories import skill

    response = ops_client.post(
        reverse("admin:jobs_company_add"),
        {
            "name": "Lakeside Plumbing",
            "is_active": "on",
            "accepts_jobs": "on",
            "plan": "pro",
            "leads_per_report": "20",
            "send_day": "15",
            "provider_settings": "{}",
            "service_areas-TOTAL_FORMS": "1",
            "service_areas-INITIAL_FORMS": "0",
            "service_areas-0-kind": "zip_prefix",
            "service_areas-0-code": "627",
            "skills-TOTAL_FORMS": "1",
            "skills-INITIAL_FORMS": "0",
            "skills-0-skill": skill("plumbing").id,
            "skills-0-level": "3",
            "technicians-TOTAL_FORMS": "0",
            "technicians-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content[:2000]
    company = Company.objects.get(name="Lakeside Plumbing")
    assert list(company.service_areas.values_list("kind", "code")) == [
        (ServiceArea.Kind.ZIP_PREFIX, "627")
    ]
    assert company.skills.get().level == SkillLevel.EXPERT
    # ... and matching sees it at once (the coverage index follows the inlines).
    assert list(SkillCoverage.objects.filter(company=company).values_list("area", "level")) == [
        ("zip_prefix:627", SkillLevel.EXPERT)
    ]


def test_a_bad_service_area_code_is_refused_in_the_admin(ops_client, db):
    response = ops_client.post(
        reverse("admin:jobs_company_add"),
        {
            "name": "Nowhere Roofing",
            "plan": "free",
            "leads_per_report": "5",
            "send_day": "1",
            "provider_settings": "{}",
            "service_areas-TOTAL_FORMS": "1",
            "service_areas-INITIAL_FORMS": "0",
            "service_areas-0-kind": "state",
            "service_areas-0-code": "Illinois",
            "skills-TOTAL_FORMS": "0",
            "skills-INITIAL_FORMS": "0",
            "technicians-TOTAL_FORMS": "0",
            "technicians-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    assert "two letters" in response.text
    assert not Company.objects.filter(name="Nowhere Roofing").exists()


def test_ops_see_an_ingestion_batch_with_its_items_and_change_nothing(ops_client, job_payload):
    body = {k: v for k, v in job_payload.items() if k != "required_skills"}
    batch = ingestion_batch_create(
        company_id=job_payload["created_by_company_id"],
        submitted_by="tests",
        source="crm-x",
        items=[
            ItemIn(external_id="ext-1", payload=body, errors=[]),
            ItemIn(
                external_id="ext-2",
                payload=None,
                errors=[{"field": "summary", "message": "This field is required."}],
            ),
        ],
    )

    listed = ops_client.get(reverse("admin:jobs_ingestionbatch_changelist") + "?q=ext-2")
    page = ops_client.get(reverse("admin:jobs_ingestionbatch_change", args=[batch.id]))

    assert listed.status_code == 200
    assert str(batch.id) in listed.content.decode()
    assert page.status_code == 200
    content = page.content.decode()
    assert "ext-1" in content and "ext-2" in content
    assert "This field is required." in content
    assert (
        ops_client.post(
            reverse("admin:jobs_ingestionbatch_delete", args=[batch.id]), {"post": "yes"}
        ).status_code
        == 403
    )
