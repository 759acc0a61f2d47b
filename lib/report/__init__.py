"""The stakeholder report: one self-contained HTML file of the run log (`python -m lib.report`)."""

from lib.report.document import build

__all__ = ["build"]
