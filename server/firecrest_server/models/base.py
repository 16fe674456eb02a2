"""Base model for every wire shape.

FirecREST v2 writes camelCase and accepts both camelCase and snake_case on input (pyfirecrest
sends a mix of both), so every request and response model derives from ``CamelModel``.
"""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
