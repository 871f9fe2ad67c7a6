"""The response policy: a TOML file of rules that turn an alert into planned actions.

Two modules, one direction of import: ``model`` (rules, matching, evaluation, the explanation)
and ``loader`` (TOML parsing and validation into the model, the per-file cache). The actions a
policy may name, and their parameters, come from ``shared.response.catalogue``. This package
re-exports the names callers use, so ``from shared.response.policy import get_policy`` keeps working.
"""

from shared.response.policy.loader import (
    MATCH_FIELDS,
    POLICY_VERSION,
    RULE_FIELDS,
    TOP_LEVEL_FIELDS,
    PolicyError,
    display_path,
    get_policy,
    load_policy,
    parse_policy,
)
from shared.response.policy.model import (
    CATEGORIES,
    CONFIDENCES,
    DEFAULT_STATUSES_TEXT,
    MATCH_STATUSES,
    MODES,
    VERDICTS,
    Check,
    Decision,
    DroppedAction,
    Match,
    Mode,
    PlannedAction,
    Policy,
    Rule,
    RuleAction,
    Verdict,
)

__all__ = [
    "CATEGORIES", "CONFIDENCES", "DEFAULT_STATUSES_TEXT", "MATCH_FIELDS", "MATCH_STATUSES", "MODES", "POLICY_VERSION",
    "RULE_FIELDS", "TOP_LEVEL_FIELDS", "VERDICTS", "Check", "Decision", "DroppedAction", "Match", "Mode",
    "PlannedAction", "Policy", "PolicyError", "Rule", "RuleAction", "Verdict", "display_path", "get_policy",
    "load_policy", "parse_policy",
]
