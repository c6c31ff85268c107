from django.urls import path

from integrations.servicetitan import api

urlpatterns = [
    path("health", api.HealthApi.as_view(), name="servicetitan-health"),
    path("auth/test", api.AuthTestApi.as_view(), name="servicetitan-auth-test"),
    path("jobs", api.JobsApi.as_view(), name="servicetitan-jobs"),
    path("jobs/batch", api.JobsBatchApi.as_view(), name="servicetitan-jobs-batch"),
    path("jobs/<str:job_id>", api.JobDetailApi.as_view(), name="servicetitan-job"),
    path("jobs/<str:job_id>/status", api.JobStatusApi.as_view(), name="servicetitan-job-status"),
]
