"""Independent detection: our own detectors watching the customers' Azure use and Partner Center.

Microsoft's alerts arrive late and miss things, so the app reads what a partner can read itself
(the ARM activity log, compute quota usage, Partner Center audit records) and raises alerts of its
own. Each detector is a source of the alert-source registry (``shared.sources``, local only: a
verdict is recorded in our tables, nothing is written to Microsoft), so its alerts go through the
same sync, dedupe, policy, ledger and actions as Microsoft's.

The seams (``shared.detection.base``): a ``DetectionReader`` turns Microsoft's responses into
typed readings; a detector is pure (readings + its own state + its configuration in, findings +
new state out); the runner fans the work out per subscription, keeps one checkpoint per
subscription and detector, and stores findings as alerts. See ``docs/detection.md``.
"""
