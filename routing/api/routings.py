"""A company's routings of a job and its manual sync (seed 000)."""

from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
)
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from access.models import Scope
from jobs.selectors import job_get
from routing.selectors import (
    jobs_visible_to,
    routings_visible_to,
)
from routing.serializers import (
    JobRoutingSerializer,
    ManualSyncSerializer,
)
from routing.services.sync import routing_manual_sync
from tradeengage.schema import BUSINESS_RULE, FORBIDDEN, MALFORMED, NOT_FOUND, UNAUTHORIZED


class JobRoutingListApi(APIView):
    required_scopes = {"GET": Scope.JOBS_READ}

    @extend_schema(
        operation_id="jobs_routings_list",
        summary="List a job's routings with their sync state and match explanation",
        description="The requesting company (and ops) see every routing of the job; a company "
        "that received it sees only its own routing.",
        parameters=[OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="Job UUID")],
        responses={
            200: JobRoutingSerializer(many=True),
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def get(self, request, job_id: str):
        job = job_get(job_id=job_id, queryset=jobs_visible_to(request.user))
        routings = routings_visible_to(request.user, job)
        return Response(JobRoutingSerializer(routings, many=True).data)


class JobSyncApi(APIView):
    required_scopes = {"POST": Scope.SYNC}

    @extend_schema(
        operation_id="jobs_sync",
        summary="Sync a job's routing to a company now",
        description=(
            "Pushes the job's routing to the company's field-service system within the request "
            "(bounded by SYNC_REQUEST_TIMEOUT_SECONDS) and returns it. A routing already synced "
            "is returned unchanged; a failed one is tried again; a retryable failure comes back "
            "as `pending` with `error_message` and `next_retry_at`, and the workers carry on. "
            "Without a routing to that company, the job is routed to it first (a manual route, "
            "its match explained as matching would, missing skills listed) when the company is "
            "active, accepts jobs, did not request the job and holds its required skills at "
            'their levels (an ops key may override the skills with "override": true); '
            "otherwise 400. Only the requesting company's key, or an ops key, may sync a job."
        ),
        parameters=[OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="Job UUID")],
        request=ManualSyncSerializer,
        responses={
            200: JobRoutingSerializer,
            400: BUSINESS_RULE,
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            404: NOT_FOUND,
            422: MALFORMED,
        },
    )
    def post(self, request, job_id: str):
        caller = request.user
        job = job_get(job_id=job_id, queryset=jobs_visible_to(caller))
        if not caller.acts_for(job.created_by_company_id):
            raise PermissionDenied("Only the company that requested the job (or ops) syncs it.")
        serializer = ManualSyncSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        override = serializer.validated_data["override"]
        if override and not caller.is_ops:
            raise PermissionDenied('Only an ops key may route with "override": true.')
        routing = routing_manual_sync(
            job=job,
            company_id=serializer.validated_data["company_id"],
            routed_by=caller.label,
            require_skills=not override,
        )
        return Response(JobRoutingSerializer(routing).data)
