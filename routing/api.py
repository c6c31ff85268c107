from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.selectors import job_get
from routing.serializers import JobRoutingSerializer, ManualSyncSerializer
from routing.services import routing_manual_sync
from tradeengage.schema import BUSINESS_RULE, MALFORMED, NOT_FOUND


class JobRoutingListApi(APIView):
    @extend_schema(
        operation_id="jobs_routings_list",
        summary="List a job's routings with their sync state and match explanation",
        parameters=[OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="Job UUID")],
        responses={200: JobRoutingSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request, job_id: str):
        job = job_get(job_id=job_id)
        return Response(JobRoutingSerializer(job.routings.all(), many=True).data)


class JobSyncApi(APIView):
    @extend_schema(
        operation_id="jobs_sync",
        summary="Sync a job's routing to a company now",
        description=(
            "Pushes the job's routing to the company's field-service system within the request "
            "(bounded by SYNC_REQUEST_TIMEOUT_SECONDS) and returns it. A routing already synced "
            "is returned unchanged; a failed one is tried again; a retryable failure comes back "
            "as `pending` with `error_message` and `next_retry_at`, and the workers carry on. "
            "Without a routing to that company, the job is routed to it first (a manual route) "
            "when the company is active, accepts jobs and did not request the job; otherwise 400."
        ),
        parameters=[OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="Job UUID")],
        request=ManualSyncSerializer,
        responses={
            200: JobRoutingSerializer,
            400: BUSINESS_RULE,
            404: NOT_FOUND,
            422: MALFORMED,
        },
    )
    def post(self, request, job_id: str):
        job = job_get(job_id=job_id)
        serializer = ManualSyncSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        routing = routing_manual_sync(job=job, company_id=serializer.validated_data["company_id"])
        return Response(JobRoutingSerializer(routing).data)
