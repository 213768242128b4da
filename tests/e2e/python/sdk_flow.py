"""The seeds' flow with the Azure SDK for Python, against crosspool; prints a JSON report.

Usage: python sdk_flow.py CONFIG_JSON
CONFIG_JSON: {"endpoint", "tenant_a", "tenant_b", "subscription_a", "subscription_b",
              "client_id", "client_secret", "pool_id"}
The app has Network Contributor on rg-a in A and on rg-b in B. As the app, the script creates
a child pool and a static CIDR in A, allocates a VNet in B from the child pool with A's token as
auxiliary (azure-mgmt-core's AuxiliaryAuthenticationPolicy), reads usage and associations, and
removes the allocation. The CA bundle comes from REQUESTS_CA_BUNDLE.
"""

import json
import sys

from azure.identity import ClientSecretCredential
from azure.mgmt.core.policies import AuxiliaryAuthenticationPolicy
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models

SCOPE = "https://management.azure.com/.default"


def main() -> int:
    config = json.loads(sys.argv[1])
    endpoint = config["endpoint"]

    def credential(tenant: str) -> ClientSecretCredential:
        return ClientSecretCredential(
            config[tenant], config["client_id"], config["client_secret"],
            authority=endpoint, disable_instance_discovery=True,
        )

    cred_a, cred_b = credential("tenant_a"), credential("tenant_b")
    client_a = NetworkManagementClient(cred_a, config["subscription_a"], base_url=endpoint, credential_scopes=[SCOPE])
    client_b = NetworkManagementClient(
        cred_b, config["subscription_b"], base_url=endpoint, credential_scopes=[SCOPE],
        custom_hook_policy=AuxiliaryAuthenticationPolicy([cred_a], SCOPE),
    )
    report = {}
    pool = client_a.ipam_pools.begin_create(
        "rg-a", "nm", "sdk-pool",
        models.IpamPool(location="centralus", properties=models.IpamPoolProperties(
            address_prefixes=["10.2.0.0/16"], parent_pool_name="pool", display_name="SDK pool")),
    ).result()
    report["pool"] = {"id": pool.id, "prefixes": pool.properties.address_prefixes,
                      "state": pool.properties.provisioning_state}
    cidr = client_a.static_cidrs.create(
        "rg-a", "nm", "sdk-pool", "onprem",
        models.StaticCidr(properties=models.StaticCidrProperties(number_of_ip_addresses_to_allocate="256")),
    )
    report["static_cidr"] = cidr.properties.address_prefixes
    vnet = client_b.virtual_networks.begin_create_or_update(
        "rg-b", "vnet-sdk",
        models.VirtualNetwork(location="centralus", address_space=models.AddressSpace(
            ipam_pool_prefix_allocations=[models.IpamPoolPrefixAllocation(id=pool.id, number_of_ip_addresses="100")])),
    ).result()
    report["vnet"] = {"id": vnet.id, "prefixes": vnet.address_space.address_prefixes,
                      "allocated": vnet.address_space.ipam_pool_prefix_allocations[0].allocated_address_prefixes}
    usage = client_a.ipam_pools.get_pool_usage("rg-a", "nm", "sdk-pool")
    report["usage"] = {"allocated": usage.number_of_allocated_ip_addresses,
                       "available": usage.number_of_available_ip_addresses}
    report["associated"] = [a.resource_id for a in client_a.ipam_pools.list_associated_resources("rg-a", "nm", "sdk-pool")]
    client_b.virtual_networks.begin_create_or_update(
        "rg-b", "vnet-sdk",
        models.VirtualNetwork(location="centralus", address_space=models.AddressSpace(address_prefixes=["10.0.0.0/16"])),
    ).result()
    report["associated_after_removal"] = [
        a.resource_id for a in client_a.ipam_pools.list_associated_resources("rg-a", "nm", "sdk-pool")]
    report["pools"] = sorted(p.name for p in client_a.ipam_pools.list("rg-a", "nm"))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
