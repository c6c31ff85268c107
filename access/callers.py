"""Who is calling: the principal an API key stands for, and the scopes it grants."""

from dataclasses import dataclass
from uuid import UUID

from access.models import Scope


@dataclass(frozen=True)
class Caller:
    """DRF's ``request.user`` on the API: a company (through its key) or operations."""

    key_id: str
    key_name: str
    company_id: UUID | None
    scopes: frozenset[str]
    # The company's plan (free, pro, enterprise), read with the key; None for operations.
    plan: str | None = None

    is_authenticated = True
    is_anonymous = False

    @property
    def is_ops(self) -> bool:
        return Scope.OPS in self.scopes

    def may(self, scope: str) -> bool:
        return self.is_ops or scope in self.scopes

    def acts_for(self, company_id) -> bool:
        """Whether the caller may act as ``company_id``: its own company, or any as ops."""
        return self.is_ops or (self.company_id is not None and self.company_id == company_id)

    @property
    def label(self) -> str:
        """Who did it, for records such as a manual route."""
        return f"ops key {self.key_name}" if self.is_ops else f"company {self.company_id}"
