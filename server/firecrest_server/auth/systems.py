"""Which systems a user may use: the one authorisation check, for bearer tokens and staging URLs."""

from __future__ import annotations

from ..config import Settings, SystemConfig
from ..errors import Forbidden, NotFound


def authorized_system(settings: Settings, system_name: str, username: str) -> SystemConfig:
    """The system named ``system_name``, if ``username`` may use it; 404 if there is no such
    system, 403 if its ``allowed_users`` leaves them out."""
    system = settings.system(system_name)
    if system is None:
        raise NotFound(f"System not found: {system_name}")
    if system.allowed_users is not None and username not in system.allowed_users:
        raise Forbidden(f"User {username} may not use system {system.name}")
    return system
