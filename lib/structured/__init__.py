"""Structured answers: the shipped schemas, a typed JSON Schema read into a model, the
formatting mode each endpoint gets, and the partial object drawn as it grows."""

from lib.structured.schemas import SCHEMAS, mode_for, structure_for, structure_from_row

__all__ = ["SCHEMAS", "mode_for", "structure_for", "structure_from_row"]
