from typing import Any, Literal

from .base import CamelModel


class ErrorBody(CamelModel):
    """FirecREST v2's error body; clients rely on ``message``."""

    error_type: Literal["error", "validation"] = "error"
    message: str
    caused_by: list[str] | None = None
    data: dict[str, Any] | None = None
    user: str | None = None
