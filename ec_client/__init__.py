"""Simulated Edge Controllers for ZTSP: the device agent and a fleet runner.

This package talks to the Provision Server, the Director and the tunnel
gateway over the network only, and imports nothing from Django or the other
apps of the project.
"""

__version__ = "0.1.0"
