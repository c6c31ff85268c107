import re

import pytest

from access.models import ApiKey

pytestmark = pytest.mark.django_db


def test_a_key_made_in_the_admin_is_shown_once(ops_client, requesting_company):
    response = ops_client.post(
        "/admin/access/apikey/add/",
        {"name": "crm sync", "company": str(requesting_company.id), "scopes": '["jobs:read"]'},
        follow=True,
    )

    assert response.status_code == 200
    [text] = re.findall(r"te_[0-9A-Za-z]{8}\.[0-9A-Za-z]{32}", response.content.decode())
    api_key = ApiKey.objects.get_from_key(text)
    assert (api_key.company_id, api_key.scopes) == (requesting_company.id, ["jobs:read"])
    page = ops_client.get(f"/admin/access/apikey/{api_key.pk}/change/").content.decode()
    assert text not in page


def test_the_library_model_has_no_admin_page(ops_client):
    assert ops_client.get("/admin/rest_framework_api_key/apikey/").status_code == 404
