"""Load a realistic demo network: companies across six trades in seven states, with skills,
technicians, service areas and a few historic jobs. Safe to run again: ids are derived from
names, so a second run finds what the first one made.
"""

import hashlib
import json
import os
import random
import sys
import time
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from tqdm import tqdm

from access.services import demo_keys_create
from integrations.crm.simulator import office as crm_office
from integrations.models import CrmSimWebhook
from jobs import services
from jobs.coverage import coverage_rebuild
from jobs.models import (
    Category,
    Company,
    CompanySkill,
    Job,
    Plan,
    ServiceArea,
    Skill,
    SkillCoverage,
    SkillLevel,
    Technician,
)
from routing.models import SyncStatus
from routing.services.backsync import routing_complete
from routing.services.sync import routing_sync_now

NAMESPACE = uuid.UUID("6f1d7a52-3c39-4f7e-9d1b-2a8f3c0e5b11")

# (city, state, ZIP prefix) — the cities the shared load generator sends jobs to, plus LA.
AREAS = [
    ("Springfield", "IL", "627"),
    ("Austin", "TX", "733"),
    ("Denver", "CO", "802"),
    ("Portland", "OR", "972"),
    ("Atlanta", "GA", "303"),
    ("Phoenix", "AZ", "850"),
    ("Los Angeles", "CA", "900"),
]

# Where generated companies work: every state, each with eight 3-digit ZIP areas, so a large
# network is spread the way a national one is, with a few dozen companies around any one city.
# The load generator's cities (627 IL, 733 TX, 802 CO, 972 OR, 303 GA, 850 AZ) are among them.
KNOWN_ZIP_AREAS = {
    "IL": ["600", "601", "604", "606", "612", "617", "627", "629"],
    "TX": ["733", "750", "752", "761", "770", "782", "787", "799"],
    "CO": ["800", "802", "805", "806", "809", "810", "815", "816"],
    "OR": ["970", "971", "972", "973", "974", "975", "977", "979"],
    "GA": ["300", "303", "305", "306", "310", "313", "316", "317"],
    "AZ": ["850", "852", "853", "855", "856", "857", "860", "863"],
    "CA": ["900", "902", "913", "917", "921", "941", "945", "958"],
}
OTHER_STATES = [
    "AL",
    "AK",
    "AR",
    "CT",
    "DE",
    "FL",
    "HI",
    "ID",
    "IN",
    "IA",
    "KS",
    "KY",
    "LA",
    "ME",
    "MD",
    "MA",
    "MI",
    "MN",
    "MS",
    "MO",
    "MT",
    "NE",
    "NV",
    "NH",
    "NJ",
    "NM",
    "NY",
    "NC",
    "ND",
    "OH",
    "OK",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "UT",
    "VT",
    "VA",
    "WA",
    "WV",
    "WI",
    "WY",
    "DC",
]
# Generated companies that list no service area: they compete for jobs anywhere, below local ones.
NATIONWIDE_SHARE = 0.005
# Generated companies built and written (with their areas, skills, technicians and coverage) at
# a time, and companies given their demo API keys at a time: the progress bars' steps.
GENERATED_CHUNK = 1000
KEYS_CHUNK = 2000


def network_areas() -> dict[str, list[str]]:
    taken = {code for codes in KNOWN_ZIP_AREAS.values() for code in codes}
    free = [f"{n:03d}" for n in range(100, 1000) if f"{n:03d}" not in taken]
    areas = dict(KNOWN_ZIP_AREAS)
    for index, state in enumerate(OTHER_STATES):
        areas[state] = free[index * 8 : index * 8 + 8]
    return areas


# trade -> (name words, specialty skills)
TRADES = {
    "plumbing": (["Plumbing", "Pipe & Drain", "Rooter"], ["water_heater", "drain_cleaning"]),
    "electrical": (["Electric", "Wiring Co.", "Power Services"], ["panel_upgrade", "ev_charger"]),
    "hvac": (["Heating & Air", "Comfort HVAC", "Climate Control"], ["ac_repair", "furnace_repair"]),
    "roofing": (["Roofing", "Roof & Gutter", "Shingle Pros"], ["gutters"]),
    "garage_doors": (["Garage Doors", "Overhead Door", "Door Masters"], ["garage_door_opener"]),
    "general": (["Handyman", "Home Services", "Builders"], ["carpentry", "drywall", "painting"]),
}
# A secondary trade some companies also do.
SIDE_TRADES = {
    "plumbing": "hvac",
    "hvac": "plumbing",
    "electrical": "general",
    "roofing": "general",
    "garage_doors": "electrical",
    "general": "painting",
}
FIRST_NAMES = ["Alex", "Maria", "Sam", "Priya", "Jordan", "Wei", "Carlos", "Aisha", "Olga", "Tom"]
LAST_NAMES = ["Rivera", "Chen", "Okafor", "Novak", "Smith", "Garcia", "Patel", "Kim", "Silva"]
NATIONWIDE = ("Nationwide", None, None)
DEMO_PLACES = [*AREAS, NATIONWIDE]
HISTORIC_JOBS = [
    (
        "Kitchen faucet leaking under the sink",
        "plumbing",
        ["plumbing"],
        {"plumbing": "intermediate"},
    ),
    (
        "Breaker keeps tripping in the garage",
        "electrical",
        ["electrical"],
        {"electrical": "expert"},
    ),
    ("AC blowing warm air", "hvac", ["hvac", "ac_repair"], {"hvac": "intermediate"}),
    ("Missing shingles after the storm", "roofing", ["roofing"], {"roofing": "basic"}),
    ("Garage door spring snapped", "garage_doors", ["garage_doors"], {"garage_doors": "expert"}),
    ("Water heater making popping noises", "plumbing", ["water_heater"], {}),
]


# The demo's mock field-service systems (every curated company's but the garage-door companies',
# which use ServiceTitan): their jobs report themselves completed, with revenue, three minutes
# after they arrive, for the back-sync; two Springfield companies misbehave so the retries and
# the dead-letter queue have something to show.
DEMO_COMPLETES_AFTER_SECONDS = 180
DEMO_PROVIDER_TROUBLE = {
    # Times out twice, then takes the job: retried after 5 s and 10 s, synced on the third try.
    ("electrical", "Springfield"): {"fail_first": 2, "failure": "timeout"},
    # Refuses the first push of each job (a permanent error): the routing is a dead letter
    # until someone retries it from the admin's failed syncs, which then succeeds.
    ("garage_doors", "Springfield"): {"fail_first": 1, "failure": "validation"},
}


def demo_provider(trade: str, city: str) -> tuple[str, dict, dict]:
    """The field-service system of a curated company (its provider type, settings and
    credentials): garage-door companies (seed 001's trade) use ServiceTitan: its simulation,
    except in Phoenix, where the real ServiceTitan client talks over HTTP to the simulator's slice
    of the real API on this server (DEMO_BASE_URL). The others and Springfield's troublemakers use
    the mock provider."""
    if (trade, city) == DEMO_CRM_COMPANY:
        base_url = os.environ.get("DEMO_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
        return (
            "crm",
            {"api_url": f"{base_url}/crm-sim/api/v2", **DEMO_CRM_MAPPING},
            {
                "client_id": DEMO_CRM_SIMULATOR["client_id"],
                "client_secret": DEMO_CRM_SIMULATOR["client_secret"],
                "webhook_secret": demo_crm_webhook_secret(),
            },
        )
    if trade != "garage_doors" or (trade, city) in DEMO_PROVIDER_TROUBLE:
        return (
            "mock",
            {
                "complete_after_seconds": DEMO_COMPLETES_AFTER_SECONDS,
                **DEMO_PROVIDER_TROUBLE.get((trade, city), {}),
            },
            {},
        )
    if city != "Phoenix":
        return "servicetitan", {}, {}
    base_url = os.environ.get("DEMO_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    return (
        "servicetitan",
        {
            "api_url": f"{base_url}/servicetitan-sim",
            "auth_url": f"{base_url}/servicetitan-sim",
            **DEMO_SERVICETITAN_MAPPING,
        },
        {
            "client_id": DEMO_SERVICETITAN_SIMULATOR["client_id"],
            "client_secret": DEMO_SERVICETITAN_SIMULATOR["client_secret"],
            "app_key": DEMO_SERVICETITAN_SIMULATOR["app_key"],
            "tenant_id": str(DEMO_SERVICETITAN_SIMULATOR["tenant_id"]),
            "booking_provider_id": str(DEMO_SERVICETITAN_SIMULATOR["booking_provider_id"]),
        },
    )


# Austin Plumbing works in a field-service CRM (seed 002): the real CRM client over HTTP to the
# CRM simulator on this server, connected (its webhooks registered there, signed with a secret
# derived from the public demo ids, like the demo API keys: DEBUG only).
DEMO_CRM_COMPANY = ("plumbing", "Austin")
DEMO_CRM_SIMULATOR = {"client_id": "demo-crm", "client_secret": "demo-crm-secret"}
DEMO_CRM_MAPPING = {
    "service_types": {"plumbing": "Plumbing Repair", "hvac": "HVAC Service"},
    "default_service_type": "General Service",
}
DEMO_CRM_WEBHOOK_EVENTS = [
    "work_order.scheduled",
    "work_order.started",
    "work_order.completed",
    "invoice.paid",
]


def demo_crm_webhook_secret() -> str:
    company_id = stable_id("demo-company", *DEMO_CRM_COMPANY)
    return hashlib.sha256(f"demo-crm-webhook/{company_id}".encode()).hexdigest()


# Phoenix Garage Doors' account at the simulated ServiceTitan (the simulator's slice of the real
# API on this server): what `seed_demo --json` gives as `servicetitan_simulator`, so any client
# can be pointed at it. The client pair is the one SERVICETITAN_SIMULATOR_CLIENTS accepts by
# default with DEBUG on.
DEMO_SERVICETITAN_SIMULATOR = {
    "client_id": "demo-phoenix",
    "client_secret": "demo-secret",
    "app_key": "demo-app-key",
    "tenant_id": 1001,
    "booking_provider_id": 7,
}
# How its bookings are filed in ServiceTitan (the simulator's tenant settings,
# integrations/servicetitan/simulator/office.py): the referral campaign, the Garage Doors
# business unit and the garage-door repair job type, and "Customer cancelled" for cancellations.
DEMO_SERVICETITAN_MAPPING = {
    "campaign_id": 41,
    "business_unit_id": 50,
    "business_units_by_trade": {"garage_doors": 51},
    "job_type_id": 66,
    "job_types_by_category": {"garage_doors": 60},
    "cancel_reason_id": 31,
}


def stable_id(*parts) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "/".join(str(p) for p in parts))


class Command(BaseCommand):
    help = "Create (or find again) the demo network of companies, technicians and historic jobs."

    def add_arguments(self, parser):
        parser.add_argument(
            "--companies",
            type=int,
            default=0,
            help="Grow the network to at least this many companies (for benchmarks).",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print the companies as one JSON object (also a data file for bench/loadgen).",
        )
        parser.add_argument("--seed", type=int, default=7, help="Random seed for generated data.")
        parser.add_argument(
            "--api-keys",
            action="store_true",
            help="Create the demo API keys even with DEBUG off (benchmarks). They are derived "
            "from the public demo ids, so never use them where the network is real.",
        )

    def handle(self, *args, companies: int, as_json: bool, seed: int, api_keys: bool, **options):
        if companies < 0:
            raise CommandError("--companies must be zero or more")
        started = time.monotonic()
        rng = random.Random(seed)
        skills = {skill.slug: skill for skill in Skill.objects.all()}
        categories = {category.slug: category for category in Category.objects.all()}
        missing = [trade for trade in TRADES if trade not in skills or trade not in categories]
        if missing:
            raise CommandError(
                f"Skills/categories missing ({', '.join(missing)}): run migrate first"
            )

        existing = Company.objects.count()
        demo_size = len(DEMO_PLACES) * len(TRADES)
        generated = max(0, companies - demo_size)
        with (
            self._progress(demo_size + generated, "company", "Companies", options) as progress,
            transaction.atomic(),
        ):
            demo = self._demo_network(rng, skills, categories)
            progress.update(len(demo))
            self._generated_network(generated, rng, skills, categories, progress)
        historic = self._historic_jobs(demo, rng)
        self._crm_demo_connect()
        keys = {}
        if settings.DEBUG or api_keys:
            company_ids = list(Company.objects.order_by("id").values_list("id", flat=True))
            with self._progress(len(company_ids), "key", "API keys", options) as progress:
                for start in range(0, len(company_ids), KEYS_CHUNK):
                    chunk = company_ids[start : start + KEYS_CHUNK]
                    keys |= demo_keys_create(company_ids=chunk)
                    progress.update(len(chunk))
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            # Fresh statistics after a bulk load, so matching's plans start from the area index.
            # Not inside a caller's transaction (a test's): ANALYZE's page and row counts
            # outlive a rollback, and would describe tables that no longer hold those rows.
            with connection.cursor() as cursor:
                for model in (Company, ServiceArea, CompanySkill, Technician):
                    cursor.execute(f"ANALYZE {model._meta.db_table}")

        if as_json:
            self.stdout.write(self._as_json(keys))
        total = Company.objects.count()
        summary = (
            f"Demo network ready: {total} companies ({total - existing} new), "
            f"{Technician.objects.count()} technicians, "
            f"{ServiceArea.objects.count()} service areas, "
            f"{CompanySkill.objects.count()} company skills, "
            f"{SkillCoverage.objects.count()} coverage rows, "
            + (f"{historic} historic jobs created." if historic else "historic jobs kept.")
            + (f" {len(keys)} demo API keys: see the README." if keys else "")
            + f" Done in {time.monotonic() - started:.1f} s."
        )
        # With --json, standard output is the JSON object alone.
        (self.stderr if as_json else self.stdout).write(summary, style_func=self.style.SUCCESS)

    def _progress(self, total: int, unit: str, desc: str, options) -> tqdm:
        return tqdm(
            total=total,
            unit=unit,
            desc=desc,
            file=options.get("stderr") or sys.stderr,
            disable=None,
        )

    def _demo_network(self, rng, skills, categories) -> list[Company]:
        """One company per trade in each metro area, plus a nationwide company per trade."""
        companies, areas, company_skills, technicians = [], [], [], []
        for metro_index, (city, state, zip_prefix) in enumerate(DEMO_PLACES):
            for trade_index, (trade, (words, specialties)) in enumerate(TRADES.items()):
                index = metro_index * len(TRADES) + trade_index
                nationwide = state is None
                name = f"{city} {words[index % len(words)]}"
                provider_type, provider_settings, provider_credentials = demo_provider(trade, city)
                company = Company(
                    id=stable_id("demo-company", trade, city),
                    name=name,
                    primary_category=categories[trade],
                    plan=[Plan.FREE, Plan.PRO, Plan.ENTERPRISE][index % 3],
                    leads_per_report=[5, 20, 50][index % 3],
                    send_day=1 + index % 31,
                    notification_email=f"dispatch@{slugify(name)}.example",
                    provider_type=provider_type,
                    provider_settings=provider_settings,
                    provider_credentials=provider_credentials,
                    accepts_jobs=index % 11 != 10,
                )
                companies.append(company)
                if not nationwide:
                    areas += [
                        ServiceArea(company=company, kind=ServiceArea.Kind.STATE, code=state),
                        ServiceArea(
                            company=company, kind=ServiceArea.Kind.ZIP_PREFIX, code=zip_prefix
                        ),
                    ]
                held = {trade: SkillLevel.EXPERT if nationwide else SkillLevel(3 - index % 3)}
                for specialty in specialties[: 1 + index % 2]:
                    held[specialty] = SkillLevel(rng.randint(1, 3))
                if index % 2 == 0:
                    held[SIDE_TRADES[trade]] = SkillLevel.INTERMEDIATE
                company_skills += [
                    CompanySkill(company=company, skill=skills[slug], level=level)
                    for slug, level in held.items()
                ]
                for tech_index in range(2 + index % 2):
                    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                    technicians.append(
                        Technician(
                            id=stable_id("demo-technician", trade, city, tech_index),
                            company=company,
                            name=f"{first} {last}",
                            email=f"{first.lower()}.{last.lower()}@{slugify(name)}.example",
                            phone=f"(555) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                        )
                    )
        self._store(companies, areas, company_skills, technicians)
        return companies

    def _generated_network(self, count, rng, skills, categories, progress) -> None:
        trades = list(TRADES)
        zip_areas = network_areas()
        states = list(zip_areas)
        companies, areas, company_skills, technicians = [], [], [], []
        for index in range(count):
            state = rng.choice(states)
            zip_prefix = rng.choice(zip_areas[state])
            trade = rng.choice(trades)
            company = Company(
                id=stable_id("network-company", index),
                name=f"{rng.choice(LAST_NAMES)} {TRADES[trade][0][0]} {state}-{index + 1}",
                primary_category=categories[trade],
                plan=rng.choice(list(Plan.values)),
                send_day=rng.randint(1, 31),
                provider_type="mock",
            )
            companies.append(company)
            if rng.random() >= NATIONWIDE_SHARE:
                areas += [
                    ServiceArea(company=company, kind=ServiceArea.Kind.STATE, code=state),
                    ServiceArea(company=company, kind=ServiceArea.Kind.ZIP_PREFIX, code=zip_prefix),
                ]
            for slug in sorted({trade, *rng.sample(trades, rng.randint(0, 2))}):
                company_skills.append(
                    CompanySkill(company=company, skill=skills[slug], level=rng.randint(1, 3))
                )
            technicians.append(
                Technician(
                    id=stable_id("network-technician", index),
                    company=company,
                    name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                )
            )
            if len(companies) == GENERATED_CHUNK or index == count - 1:
                self._store(companies, areas, company_skills, technicians)
                progress.update(len(companies))
                companies, areas, company_skills, technicians = [], [], [], []

    def _crm_demo_connect(self) -> None:
        """Austin Plumbing's webhooks, registered at the CRM simulator as Connect would have
        (the server that Connect would call is not up yet), once."""
        company_id = stable_id("demo-company", *DEMO_CRM_COMPANY)
        base_url = os.environ.get("DEMO_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
        url = f"{base_url}/api/integrations/crm/webhook?account={company_id}"
        client_id = DEMO_CRM_SIMULATOR["client_id"]
        if not CrmSimWebhook.objects.filter(client_id=client_id, url=url).exists():
            crm_office.webhook_register(
                client_id=client_id,
                url=url,
                events=DEMO_CRM_WEBHOOK_EVENTS,
                secret=demo_crm_webhook_secret(),
            )

    def _store(self, companies, areas, company_skills, technicians) -> None:
        Company.objects.bulk_create(companies, batch_size=2000, ignore_conflicts=True)
        ServiceArea.objects.bulk_create(areas, batch_size=5000, ignore_conflicts=True)
        CompanySkill.objects.bulk_create(company_skills, batch_size=5000, ignore_conflicts=True)
        Technician.objects.bulk_create(technicians, batch_size=2000, ignore_conflicts=True)
        coverage_rebuild(company_ids=[company.id for company in companies])

    def _historic_jobs(self, demo: list[Company], rng) -> int:
        """A few jobs routed through the real job-creation path, every other one then synced
        and completed with revenue through the sync and back-sync services, so reports and the
        admin have history to show. Returns how many it created: none when they exist."""
        requesters = [c for c in demo if c.primary_category.slug == "general"]
        if Job.objects.filter(created_by_company__in=requesters).exists():
            return 0
        technicians = {t.company_id: t for t in Technician.objects.filter(company__in=requesters)}
        now = timezone.now()
        for index, (summary, category, required, levels) in enumerate(HISTORIC_JOBS):
            requester = requesters[index % len(requesters)]
            city, state, zip_prefix = AREAS[index % len(AREAS)]
            job = services.job_create(
                summary=summary,
                address={
                    "street": f"{100 + index * 17} Maple Drive",
                    "city": city,
                    "state": state,
                    "zip_code": f"{zip_prefix}{index:02d}",
                },
                homeowner={
                    "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                    "phone": f"(555) 010-{1000 + index}",
                    "email": f"homeowner{index}@example.com",
                },
                created_by_company_id=requester.id,
                created_by_technician_id=technicians[requester.id].id,
                skill_levels={slug: levels.get(slug, "basic") for slug in required},
                category=category,
            )
            if index % 2 == 0:
                self._mark_completed(job, now - timedelta(days=30 - index * 3), rng)
        return len(HISTORIC_JOBS)

    def _mark_completed(self, job: Job, completed_at, rng) -> None:
        """Sync the job's best routing to a well-behaved mock system now and record its
        completion, as the back-sync would have. The server is not up yet, so systems reached
        over HTTP (and the demo's troublemakers) are left to the workers."""
        well_behaved = [
            routing
            for routing in job.routings.select_related("job", "company")
            if routing.company.provider_type == "mock"
            and not {"fail_first", "failure_rate"} & set(routing.company.provider_settings)
        ]
        if not well_behaved:
            return
        routing = routing_sync_now(routing=well_behaved[0])
        if routing.sync_status != SyncStatus.SYNCED:
            return
        routing_complete(
            routing=routing, completed_at=completed_at, revenue=Decimal(rng.randint(150, 2500))
        )

    def _servicetitan_simulator(self) -> dict:
        base_url = os.environ.get("DEMO_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
        return {
            "auth_url": f"{base_url}/servicetitan-sim/connect/token",
            "api_url": f"{base_url}/servicetitan-sim",
            **DEMO_SERVICETITAN_SIMULATOR,
            "bookings_url": (
                f"{base_url}/servicetitan-sim/crm/v2/tenant/"
                f"{DEMO_SERVICETITAN_SIMULATOR['tenant_id']}/booking-provider/"
                f"{DEMO_SERVICETITAN_SIMULATOR['booking_provider_id']}/bookings"
            ),
        }

    def _as_json(self, keys: dict) -> str:
        levels = {label: label for label in SkillLevel.labels}
        companies = {}
        for company in Company.objects.order_by("name").values("id", "name", "provider_type"):
            companies[company["id"]] = {
                "id": str(company["id"]),
                "name": company["name"],
                "provider_type": company["provider_type"],
                "skills": {},
                "technician_ids": [],
                "api_key": keys.get(company["id"]),
            }
        for company_id, slug, level in CompanySkill.objects.values_list(
            "company_id", "skill__slug", "level"
        ):
            companies[company_id]["skills"][slug] = SkillLevel(level).label
        for company_id, technician_id in Technician.objects.filter(is_active=True).values_list(
            "company_id", "id"
        ):
            companies[company_id]["technician_ids"].append(str(technician_id))
        listed = list(companies.values())
        return json.dumps(
            {
                "companies": listed,
                # The same network in the shape ../shared/bench/loadgen.py reads.
                "pairs": [
                    {
                        "company_id": c["id"],
                        "technician_id": c["technician_ids"][0],
                        **({"api_key": c["api_key"]} if c["api_key"] else {}),
                    }
                    for c in listed
                    if c["technician_ids"]
                ],
                "skills": list(TRADES),
                "levels": list(levels),
                "ops_api_key": keys.get("ops"),
                "servicetitan_simulator": self._servicetitan_simulator(),
            }
        )
