from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs and companies"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from jobs.coverage import coverage_follow_delete, coverage_follow_save
        from jobs.models import Category, CompanySkill, ServiceArea, Skill
        from jobs.selectors import managed_lists_forget

        for model in (Skill, Category):
            post_save.connect(managed_lists_forget, sender=model, dispatch_uid=f"forget-{model}")
            post_delete.connect(managed_lists_forget, sender=model, dispatch_uid=f"drop-{model}")
        for model in (ServiceArea, CompanySkill):
            post_save.connect(coverage_follow_save, sender=model, dispatch_uid=f"cover-{model}")
            post_delete.connect(
                coverage_follow_delete, sender=model, dispatch_uid=f"uncover-{model}"
            )
