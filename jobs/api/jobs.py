from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from access.idempotency import (
    IDEMPOTENCY_KEY_HEADER,
    REPLAYED_HEADER,
    Remember,
    idempotency_key_read,
    idempotent_response,
)
from access.models import Scope
from jobs import services
from jobs.selectors import job_get, jobs_with_skills
from jobs.serializers import JobCreateSerializer, JobListQuerySerializer, JobSerializer
from routing.selectors import jobs_visible_to
from tradeengage.schema import (
    BUSINESS_RULE,
    FORBIDDEN,
    MALFORMED,
    NOT_FOUND,
    UNAUTHORIZED,
    ErrorSerializer,
    ValidationErrorSerializer,
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
        "(created_by_company_id); an ops key may create one for any company.\n\n"
        "With an `Idempotency-Key`, a retry creates nothing: the same key with the same body "
        "within 24 hours gets the first response again (status and body, with "
        "`Idempotent-Replayed: true`). Keys are per API key. A request that failed stores "
        "nothing, so it may be sent again with the same key.",
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_KEY_HEADER,
                str,
                OpenApiParameter.HEADER,
                pattern="^[ -~]{1,255}$",
                description="1 to 255 printable ASCII characters, unique per request (a UUID "
                "will do); remembered for 24 hours per API key.",
            ),
            OpenApiParameter(
                REPLAYED_HEADER,
                str,
                OpenApiParameter.HEADER,
                response=[201],
                enum=["true"],
                description="Present when the response is a stored one, replayed for a retry "
                "with the same Idempotency-Key.",
            ),
        ],
        request=JobCreateSerializer,
        responses={
            201: JobSerializer,
            400: BUSINESS_RULE,
            401: UNAUTHORIZED,
            403: FORBIDDEN,
            409: OpenApiResponse(
                ErrorSerializer,
                description="A concurrent change got in the way, or a request with this "
                "Idempotency-Key is still in progress; send it again (CONFLICT).",
            ),
            422: OpenApiResponse(
                ValidationErrorSerializer,
                description="Malformed input (VALIDATION_ERROR): bad JSON, wrong content type, "
                "wrong types or values; a malformed Idempotency-Key, or one already used with "
                "another request.",
            ),
        },
    )
    def post(self, request):
        idempotency_key = idempotency_key_read(request)
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not request.user.acts_for(serializer.validated_data["created_by_company_id"]):
            raise PermissionDenied("A company's key creates jobs only as its own company.")
        if idempotency_key is None:
            return _job_created(serializer)
        return idempotent_response(
            request=request,
            key=idempotency_key,
            respond=lambda remember: _job_created(serializer, remember=remember),
        )


def _job_created(serializer: JobCreateSerializer, *, remember: Remember | None = None) -> Response:
    """201 with the new job; ``remember`` stores that response in the job's transaction."""
    # The skills and category just stored are echoed as sent instead of being read back.
    context = {
        "skill_levels": serializer.validated_data["skill_levels"],
        "category": serializer.validated_data.get("category"),
    }
    response = Response(status=status.HTTP_201_CREATED)

    def respond(job):
        response.data = JobSerializer(job, context=context).data
        if remember is not None:
            remember(response)

    services.job_create(**serializer.validated_data, on_created=respond)
    return response


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
