"""The action catalogue: one module per action, each implementing ``base.Action``."""
