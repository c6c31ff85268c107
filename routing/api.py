from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.selectors import job_get
from routing.serializers import JobRoutingSerializer
from tradeengage.schema import NOT_FOUND


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
