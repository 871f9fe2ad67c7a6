"""Partner Center service requests against Microsoft's documentation, field by field.

Sources (learn.microsoft.com/partner-center/developer): create-a-service-request (``POST
/v1/servicerequests/{agent-locale}`` with Title, Description, Severity, SupportTopicId),
service-request-resources (the ServiceRequest and SupportTopic resources), get-service-request-support-topics
and the partner's service request list. App+User only, as the pages say. Keys are compared
case-insensitively (the create page's body uses PascalCase, responses camelCase). Also the
licence-based subscription of the default scenario against the documented Subscription resource.
"""

from __future__ import annotations

from typing import Any

import httpx

from sandbox import ids
from tests.contract.routes import covers
from tests.contract.test_partner_center_docs import SUBSCRIPTION_FIELDS, check_fields, pc  # noqa: F401 (fixture)

# service-request-resources: ServiceRequest (FileLinks, NewNote and Notes are the documented extras).
SERVICE_REQUEST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "title": str, "description": str, "severity": str, "supportTopicId": str, "supportTopicName": str, "id": str,
    "status": str, "organization": dict, "primaryContact": dict, "lastUpdatedBy": dict, "productName": str,
    "productId": str, "createdDate": str, "lastModifiedDate": str, "lastClosedDate": str, "fileLinks": list,
    "notes": list, "countryCode": str, "attributes": dict,
}
DOCUMENTED_SERVICE_REQUEST = {k.lower() for k in SERVICE_REQUEST_FIELDS} | {"newnote"}
SUPPORT_TOPIC_FIELDS: dict[str, type | tuple[type, ...]] = {"name": str, "description": str, "id": str,
                                                            "attributes": dict}
SEVERITIES = {"unknown", "critical", "moderate", "minimal"}
STATUSES = {"none", "open", "closed", "attention_needed"}


def collection(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["attributes"]["objectType"] == "Collection" and body["totalCount"] == len(body["items"])
    return list(body["items"])


@covers("partner_center", "GET /v1/servicerequests/supporttopics", "POST /v1/servicerequests/{agentLocale}",
        "GET /v1/servicerequests")
def test_create_a_service_request_with_the_documented_body(pc: httpx.Client) -> None:  # noqa: F811
    topics = collection(pc.get("/v1/servicerequests/supporttopics"))
    for topic in topics:
        check_fields(topic, SUPPORT_TOPIC_FIELDS)
        assert {k.lower() for k in topic} == {k.lower() for k in SUPPORT_TOPIC_FIELDS}
    topic = next(t for t in topics if t["id"] == ids.FRAUD_SUPPORT_TOPIC_ID)
    assert collection(pc.get("/v1/servicerequests")) == []

    body = {"Title": "TrialSR", "Description": "Ignore this SR", "Severity": "Critical",
            "SupportTopicId": topic["id"]}
    created = pc.post("/v1/servicerequests/en-US", json=body)
    assert created.status_code == 200, created.text
    request = created.json()
    check_fields(request, SERVICE_REQUEST_FIELDS)
    assert {k.lower() for k in request} <= DOCUMENTED_SERVICE_REQUEST, "an undocumented field is served"
    assert (request["title"], request["severity"], request["supportTopicName"]) == \
        ("TrialSR", "critical", topic["name"])
    assert request["status"] in STATUSES and request["status"] == "open" and request["id"].isdigit()
    assert request["attributes"]["objectType"] == "ServiceRequest"
    assert [r["id"] for r in collection(pc.get("/v1/servicerequests"))] == [request["id"]]

    for wrong, code in (({**body, "Severity": "urgent"}, 400), ({**body, "SupportTopicId": "0"}, 400),
                        ({k: v for k, v in body.items() if k != "Title"}, 400)):
        refused = pc.post("/v1/servicerequests/en-US", json=wrong)
        assert refused.status_code == code and set(refused.json()) == {"code", "description", "data", "source"}
    assert len(collection(pc.get("/v1/servicerequests"))) == 1  # refused bodies open nothing


def test_the_licence_subscription_is_a_documented_subscription_resource(pc: httpx.Client) -> None:  # noqa: F811
    licence = pc.get(f"/v1/customers/{ids.CUSTOMER_FABRIKAM}/subscriptions/{ids.LICENCE_FABRIKAM_M365}").json()
    check_fields(licence, SUBSCRIPTION_FIELDS)
    assert licence["billingType"] == "license" and licence["offerName"] == "Microsoft 365 Business Premium"
    assert licence["offerId"].startswith("CFQ7TTC0LCHC:0002")
