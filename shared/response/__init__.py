"""Response: policy evaluation, the action catalogue and the audit ledger."""
