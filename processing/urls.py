from django.urls import path

from processing import api

urlpatterns = [
    path("health", api.HealthApi.as_view(), name="processing-health"),
    path("process-client", api.ProcessClientApi.as_view(), name="processing-process-client"),
    path("job-status/<str:job_id>", api.JobStatusApi.as_view(), name="processing-job-status"),
    path("process-retry-queue", api.RetryQueueApi.as_view(), name="processing-retry-queue"),
]
