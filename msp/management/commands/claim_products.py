from common.commands import MSPProductListCommand
from msp.services.products import claim_products


class Command(MSPProductListCommand):
    help = "Claim, for an MSP, the Product IDs listed in FILE; only IDs allocated to that MSP are claimed."
    verb = "claimed"
    service = staticmethod(claim_products)
