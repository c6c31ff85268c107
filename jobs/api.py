from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from access.models import Scope
from jobs import services
from jobs.selectors import job_get, jobs_with_skills
from jobs.serializers import JobCreateSerializer, JobListQuerySerializer, JobSerializer
from routing.selectors import jobs_visible_to
from tradeengage.schema import (
    BUSINESS_RULE,
    CONFLICT,
    FORBIDDEN,
    MALFORMED,
    NOT_FOUND,
    UNAUTHORIZED,
)


class JobListCreateApi(APIView):
    required_scopes = {"GET": Scope.JOBS_READ, "POST": Scope.JOBS_WRITE}

    @extend_schema(
        operation_id="jobs_list",
        summary="List jobs, newest first",
        description="A company's key lists the jobs it created or received a routing for; an "
        "ops key lists every job.",
        parameters=[JobListQuerySerializer],
        responses={
            200: JobSerializer(many=True),
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            422: MALFORMED,
        },
    )
    def get(self, request):
        query = JobListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        skip, limit = query.validated_data["skip"], query.validated_data["limit"]
        jobs = jobs_visible_to(request.user, jobs_with_skills()).order_by("-created_at", "-id")
        return Response(JobSerializer(jobs[skip : skip + limit], many=True).data)

    @extend_schema(
        operation_id="jobs_create",
        summary="Create a job and route it to matching companies",
        description="A company's key creates jobs only as its own company "
        "(created_by_company_id); an ops key may create one for any company.",
        request=JobCreateSerializer,
        responses={
            201: JobSerializer,
            400: BUSINESS_RULE,
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            409: CONFLICT,
            422: MALFORMED,
        },
    )
    def post(self, request):
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not request.user.acts_for(serializer.validated_data["created_by_company_id"]):
            raise PermissionDenied("A company's key creates jobs only as its own company.")
        job = services.job_create(**serializer.validated_data)
        # The skills and category just stored are echoed as sent instead of being read back.
        context = {
            "skill_levels": serializer.validated_data["skill_levels"],
            "category": serializer.validated_data.get("category"),
        }
        return Response(JobSerializer(job, context=context).data, status=status.HTTP_201_CREATED)


class JobDetailApi(APIView):
    required_scopes = {"GET": Scope.JOBS_READ}

    @extend_schema(
        operation_id="jobs_retrieve",
        summary="Get one job",
        description="A job the key's company neither created nor received is unknown (404).",
        parameters=[OpenApiParameter("job_id", str, OpenApiParameter.PATH, description="Job UUID")],
        responses={200: JobSerializer, 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, job_id: str):
        jobs = jobs_visible_to(request.user, jobs_with_skills())
        return Response(JobSerializer(job_get(job_id=job_id, queryset=jobs)).data)
