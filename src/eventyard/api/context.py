"""What a handler gets besides the request: the services, and who is calling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eventyard.domain.models import Principal
from eventyard.errors import Unauthenticated
from eventyard.services.container import Services
from eventyard.store.accounts import DashboardSession

if TYPE_CHECKING:
    from eventyard.api.routing import Route


@dataclass
class Context:
    services: Services
    principal_or_none: Principal | None = None
    routes: list[Route] = field(default_factory=list)
    session: DashboardSession | None = None  # the dashboard's signed-in user, on its routes

    @property
    def principal(self) -> Principal:
        if self.principal_or_none is None:  # a route declared PUBLIC asked for a principal
            raise Unauthenticated("This route needs an API key.")
        return self.principal_or_none
