"""Well-known identifiers of the sandbox's default scenario.

Shared by the scenario, the stand-ins and the tests so the same tenant, subscription, VM and user
mean the same thing everywhere. None of these exist at Microsoft.
"""

from typing import Final

PARTNER_TENANT_ID: Final = "11111111-1111-4111-8111-111111111111"
PARTNER_NAME: Final = "Contoso CSP (sandbox)"

# The Secure Application Model app (App+User, delegated) and the app-only Graph alerts reader.
PARTNER_APP_CLIENT_ID: Final = "22222222-2222-4222-8222-222222222222"
GRAPH_APP_CLIENT_ID: Final = "33333333-3333-4333-8333-333333333333"
# The partner's Admin Agent user who consented to the SAM app (the App+User tokens' oid); by
# admin-on-behalf-of / GDAP it holds Owner on the customers' Azure subscriptions.
ADMIN_AGENT_USER_ID: Final = "99999999-0001-4000-8000-000000000001"
# The identity the function app itself uses for Key Vault locally (stands in for managed identity).
LOCAL_APP_CLIENT_ID: Final = "44444444-4444-4444-8444-444444444444"
# The function app's own API (the admin API): its app registration exposes two app roles.
ADMIN_API_CLIENT_ID: Final = "55555555-5555-4555-8555-555555555555"
ADMIN_API_URI: Final = f"api://{ADMIN_API_CLIENT_ID}"
ROLE_READ: Final = "FraudResponder.Read"
ROLE_DECIDE: Final = "FraudResponder.Decide"
# Operator clients of the admin API (client credentials): one may read and decide, one may only read.
OPERATOR_APP_CLIENT_ID: Final = "66666666-6666-4666-8666-666666666666"
OPERATOR_APP_SECRET: Final = "sandbox-operator-app-secret-3Lp8"
READER_APP_CLIENT_ID: Final = "77777777-7777-4777-8777-777777777777"
READER_APP_SECRET: Final = "sandbox-reader-app-secret-6Tn1"

# Customers (tenant ids) and their Azure subscriptions.
CUSTOMER_FABRIKAM: Final = "aaaaaaaa-0001-4000-8000-000000000001"
CUSTOMER_NORTHWIND: Final = "aaaaaaaa-0002-4000-8000-000000000002"
CUSTOMER_TAILSPIN: Final = "aaaaaaaa-0003-4000-8000-000000000003"

SUB_FABRIKAM_PROD: Final = "bbbbbbbb-0001-4000-8000-000000000001"  # the crypto-mining subscription
SUB_NORTHWIND_DEV: Final = "bbbbbbbb-0002-4000-8000-000000000002"
SUB_TAILSPIN_LAB: Final = "bbbbbbbb-0003-4000-8000-000000000003"

# Partner Center ids of the Azure plan subscription holding each Azure subscription (entitlement).
PLAN_FABRIKAM: Final = "cccccccc-0001-4000-8000-000000000001"
PLAN_NORTHWIND: Final = "cccccccc-0002-4000-8000-000000000002"
PLAN_TAILSPIN: Final = "cccccccc-0003-4000-8000-000000000003"

# The crypto-mining alert: two VMs in Fabrikam's subscription, created by a compromised user and a
# rogue service principal.
MINING_RESOURCE_GROUP: Final = "rg-batch-prod"
MINING_VM_1: Final = (
    f"/subscriptions/{SUB_FABRIKAM_PROD}/resourceGroups/{MINING_RESOURCE_GROUP}"
    "/providers/Microsoft.Compute/virtualMachines/vm-gpu-01"
)
MINING_VM_2: Final = (
    f"/subscriptions/{SUB_FABRIKAM_PROD}/resourceGroups/{MINING_RESOURCE_GROUP}"
    "/providers/Microsoft.Compute/virtualMachines/vm-gpu-02"
)
MINING_ALERT_EVENT_ID: Final = f"{SUB_FABRIKAM_PROD}_vm-gpu-01"
COMPROMISED_USER_ID: Final = "dddddddd-0001-4000-8000-000000000001"
COMPROMISED_USER_UPN: Final = "mallory@fabrikam.example"
ROGUE_APP_ID: Final = "eeeeeeee-0001-4000-8000-000000000001"  # application object id
ROGUE_APP_CLIENT_ID: Final = "eeeeeeee-0002-4000-8000-000000000002"  # appId
ROGUE_SP_ID: Final = "eeeeeeee-0003-4000-8000-000000000003"  # service principal object id
FABRIKAM_GLOBAL_ADMIN_ID: Final = "dddddddd-0002-4000-8000-000000000002"
FABRIKAM_GLOBAL_ADMIN_UPN: Final = "admin@fabrikam.example"

# Mailbox in the partner tenant that sends notifications, and the partner's security contact.
NOTIFY_SENDER: Final = "fraud-responder@contoso-csp.example"
SECURITY_CONTACT: Final = "soc@contoso-csp.example"

# Independent detection (issue 13): a customer Microsoft has NOT alerted on, where a principal never
# seen before in its subscription creates twelve GPU VMs across three regions the subscription never
# used and grants itself Owner, minutes before the sandbox starts. Woodgrove buys through an indirect
# reseller (Adatum), shown as the customer's associatedPartnerId.
CUSTOMER_WOODGROVE: Final = "aaaaaaaa-0004-4000-8000-000000000004"
SUB_WOODGROVE_PROD: Final = "bbbbbbbb-0004-4000-8000-000000000004"
PLAN_WOODGROVE: Final = "cccccccc-0004-4000-8000-000000000004"
RESELLER_ADATUM: Final = "4871234"
WOODGROVE_INTRUDER_ID: Final = "dddddddd-0004-4000-8000-000000000004"
WOODGROVE_INTRUDER_UPN: Final = "render-ops@woodgrove.example"
WOODGROVE_BURST_REGIONS: Final = ("eastus2", "southeastasia", "japaneast")
WOODGROVE_BURST_SIZES: Final = ("Standard_NC24ads_A100_v4", "Standard_NV36ads_A10_v5", "Standard_NC24ads_A100_v4")
WOODGROVE_BURST_VMS: Final = 12
