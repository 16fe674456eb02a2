from pydantic import AliasChoices, Field

from .base import CamelModel


class CopyRequest(CamelModel):
    source_path: str = Field(validation_alias=AliasChoices("sourcePath", "source_path", "path"))
    target_path: str
    dereference: bool = False


class MoveRequest(CamelModel):
    source_path: str = Field(validation_alias=AliasChoices("sourcePath", "source_path", "path"))
    target_path: str
