import hashlib
from datetime import datetime

from django.db import transaction

from access.models import COMPANY_SCOPES, KEY_MARK, ApiKey, Scope
from access.ratelimit import key_uses_take

DEMO_KEY_NAME = "demo"


def api_key_create(
    *,
    name: str,
    company_id=None,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key for a company (its scopes default to every company scope) or, without a
    company, for operations (``ops``). Returns the key and its text, which is shown once and
    stored only hashed."""
    if scopes is None:
        scopes = list(COMPANY_SCOPES) if company_id else [Scope.OPS]
    api_key = ApiKey(
        name=name, company_id=company_id, scopes=[str(s) for s in scopes], expiry_date=expires_at
    )
    api_key.full_clean(exclude=["id", "prefix", "hashed_key"])
    raw = ApiKey.objects.assign_key(api_key)
    api_key.save()
    return api_key, KEY_MARK + raw


def api_key_revoke(*, key_id: str) -> bool:
    """Revoke a key for good; False when it was already revoked (or is unknown)."""
    return bool(ApiKey.objects.filter(id=key_id, revoked=False).update(revoked=True))


def api_key_uses_record() -> int:
    """Write the keys' last uses the rate limiter noted in Redis since the last time (beat, every
    minute), in bulk; how many keys changed. Without Redis, authentication writes them itself."""
    uses = key_uses_take()
    changed = []
    for api_key in ApiKey.objects.filter(id__in=list(uses)).only("id", "last_used_at"):
        used_at = uses[api_key.id]
        if api_key.last_used_at is None or api_key.last_used_at < used_at:
            api_key.last_used_at = used_at
            changed.append(api_key)
    ApiKey.objects.bulk_update(changed, ["last_used_at"], batch_size=500)
    return len(changed)


def demo_key_text(seed: str) -> str:
    """The demo network's key for ``seed`` (a company id, or "ops"): derived from public ids,
    so public itself. The demo creates these only with DEBUG on or when asked to."""
    digest = hashlib.sha256(f"tradeengage-demo-api-key:{seed}".encode()).hexdigest()
    return f"{KEY_MARK}{digest[:8]}.{digest[8:40]}"


def demo_keys_create(*, company_ids: list) -> dict:
    """The demo keys of these companies and the ops demo key, created unless they exist.
    Returns ``{company id or "ops": key text}``."""
    keys = {company_id: demo_key_text(str(company_id)) for company_id in company_ids}
    keys["ops"] = demo_key_text("ops")
    hasher = ApiKey.objects.key_generator
    rows = []
    for owner, text in keys.items():
        raw = text.removeprefix(KEY_MARK)
        prefix = raw.partition(".")[0]
        hashed = hasher.hash(raw)
        rows.append(
            ApiKey(
                id=f"{prefix}.{hashed}",
                prefix=prefix,
                hashed_key=hashed,
                name=DEMO_KEY_NAME,
                company_id=None if owner == "ops" else owner,
                scopes=[Scope.OPS.value] if owner == "ops" else [str(s) for s in COMPANY_SCOPES],
            )
        )
    with transaction.atomic():
        ApiKey.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return keys
