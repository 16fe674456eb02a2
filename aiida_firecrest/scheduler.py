"""AiiDA scheduler ``firecrest``: Slurm jobs through a FirecREST v2 API.

Not implemented yet (tracked by the AiiDA plugin issue): registered under the
``aiida.schedulers`` entry point, but still abstract, so instantiating it raises ``TypeError``.
"""

from aiida.schedulers import Scheduler


class FirecrestScheduler(Scheduler):
    """Scheduler that submits, polls and cancels jobs through a FirecREST v2 API."""
