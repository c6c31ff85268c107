from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from access.models import Scope
from analytics.selectors import dashboard
from analytics.serializers import DashboardSerializer
from tradeengage.schema import FORBIDDEN, UNAUTHORIZED


class DashboardApi(APIView):
    required_scopes = {"GET": Scope.OPS}

    @extend_schema(
        operation_id="analytics_dashboard",
        tags=["analytics"],
        summary="The network's figures: jobs, syncs, latency, backlog, revenue (ops key)",
        description="What the admin's dashboard shows, as JSON: totals, the last 24 hours "
        "(hourly), the last 30 days (daily; closed days from their nightly roll-up, today "
        "live), the sync engine's backlog, the last nightly run and the companies with the "
        "most failed syncs. Every network's figures: an ops key only.",
        responses={200: DashboardSerializer, 401: UNAUTHORIZED, 403: FORBIDDEN},
    )
    def get(self, request):
        return Response(DashboardSerializer(dashboard()).data)
