from common.commands import MSPProductListCommand
from msp.services.products import allocate_products


class Command(MSPProductListCommand):
    help = "Allocate the Product IDs listed in FILE (CSV or one per line) to an MSP."
    verb = "allocated"
    service = staticmethod(allocate_products)
