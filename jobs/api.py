from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import services
from jobs.selectors import job_get, jobs_with_skills
from jobs.serializers import JobCreateSerializer, JobListQuerySerializer, JobSerializer
from tradeengage.schema import BUSINESS_RULE, CONFLICT, MALFORMED, NOT_FOUND


class JobListCreateApi(APIView):
    @extend_schema(
        operation_id="jobs_list",
        summary="List jobs, newest first",
        parameters=[JobListQuerySerializer],
        responses={200: JobSerializer(many=True), 422: MALFORMED},
    )
    def get(self, request):
        query = JobListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        skip, limit = query.validated_data["skip"], query.validated_data["limit"]
        jobs = jobs_with_skills().order_by("-created_at", "-id")[skip : skip + limit]
        return Response(JobSerializer(jobs, many=True).data)

    @extend_schema(
        operation_id="jobs_create",
        summary="Create a job and route it to matching companies",
        request=JobCreateSerializer,
        responses={201: JobSerializer, 400: BUSINESS_RULE, 409: CONFLICT, 422: MALFORMED},
    )
    def post(self, request):
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.job_create(**serializer.validated_data)
        # The skills and category just stored are echoed as sent instead of being read back.
        context = {
            "skill_levels": serializer.validated_data["skill_levels"],
            "category": serializer.validated_data.get("category"),
        }
        return Response(JobSerializer(job, context=context).data, status=status.HTTP_201_CREATED)


class JobDetailApi(APIView):
    @extend_schema(
        operation_id="jobs_retrieve",
        summary="Get one job",
        parameters=[OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="Job UUID")],
        responses={200: JobSerializer, 404: NOT_FOUND},
    )
    def get(self, request, job_id: str):
        return Response(JobSerializer(job_get(job_id=job_id, queryset=jobs_with_skills())).data)
