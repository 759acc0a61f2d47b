"""The guardrails lab: streaming against validation (`python -m lib.guards`).

validators: what is wrong in a text, and where; strategies: when text reaches the screen
relative to its validation (pure functions of a chunk timeline); lab: one streamed generation
fanned out to every strategy at once, with a planted violation for repeatable demos.
"""

from lib.guards.lab import (
                            DEFAULT_PLANT,
                            PRESETS,
                            TABLE_FIELDS,
                            GuardPreset,
                            GuardRun,
                            Plant,
                            Planter,
                            run_headless,
                            summary_rows,
)
from lib.guards.strategies import (
                            ALL_STRATEGIES,
                            STRATEGIES,
                            GuardOptions,
                            OnFail,
                            Strategy,
                            check_strategies,
                            simulate,
                            strategies_for,
)
from lib.guards.validators import (
                            DEFAULT_SCHEMA,
                            VALIDATORS,
                            BannedTerms,
                            Check,
                            Checker,
                            JsonSchema,
                            MaxLength,
                            Moderation,
                            PersonalData,
                            Scope,
                            Validator,
                            ValidatorSettings,
                            Violation,
                            build_validators,
                            luhn_valid,
                            merged_spans,
                            sentence_spans,
)

__all__ = [
    "ALL_STRATEGIES", "DEFAULT_PLANT", "DEFAULT_SCHEMA", "PRESETS", "STRATEGIES", "TABLE_FIELDS",
    "VALIDATORS",
    "BannedTerms", "Check", "Checker", "GuardOptions", "GuardPreset", "GuardRun", "JsonSchema",
    "MaxLength", "Moderation", "OnFail", "PersonalData", "Plant", "Planter", "Scope", "Strategy",
    "Validator", "ValidatorSettings", "Violation", "build_validators", "check_strategies",
    "luhn_valid", "merged_spans", "run_headless", "sentence_spans", "simulate", "strategies_for",
    "summary_rows",
]
