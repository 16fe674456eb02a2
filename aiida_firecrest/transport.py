"""AiiDA transport ``firecrest``: files on an HPC system through a FirecREST v2 API.

Not implemented yet (tracked by the AiiDA plugin issue): the class is registered under the
``aiida.transports`` entry point so the plugin layout is fixed, but it still lacks AiiDA's
abstract methods, so instantiating it raises ``TypeError``.
"""

from aiida.transports import AsyncTransport


class FirecrestTransport(AsyncTransport):
    """Transport over a FirecREST v2 compatible HTTP API."""
