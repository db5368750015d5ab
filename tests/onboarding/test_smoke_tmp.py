from tests.conftest import client_for
from tests.factories import make_csr, new_product_id

def test_smoke(world):
    pid = new_product_id()
    csr, _ = make_csr(pid)
    r = client_for("acme.localhost").post("/api/v1/onboard", {"product_id": pid, "csr": csr, "facts": {"fw": "1"}}, format="json", HTTP_AUTHORIZATION=f"Bearer {world.a.tenant_access_key}")
    print(r.status_code, r.json())
    big = "x" * (70 * 1024)
    r = client_for("acme.localhost").post("/api/v1/onboard", {"product_id": pid, "csr": big, "facts": {}}, format="json", HTTP_AUTHORIZATION=f"Bearer {world.a.tenant_access_key}")
    print(r.status_code, r.content[:300])
