"""Settings of the processes a fault test starts: the test settings, with faster recovery of lost messages.

A worker killed with SIGKILL never acknowledges its message. Redis hands it to
another worker once it is older than the visibility timeout, but kombu 5.7
scans for such messages only every ``unacked_restore_interval`` x
``unacked_restore_throttle`` seconds (10 x 10 by default). The fault tests
shorten both so that a lost message returns within seconds.
"""

from tests.settings import *  # noqa: F403

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
# Signatures wait ZTSP_TEST_SIGNING_DELAY seconds each (0 unless a test sets it).
ZTSP_SIGNER_BACKENDS = {"software": "tests.faults.signers.SlowSoftwareBackend"}
