"""Our own view of every customer's spend: daily rated usage from Graph's partner billing export,
kept as a compact per-subscription, per-day series in Table Storage.

Why our own series: Microsoft's spend signals (budgets, Cost Management anomalies) are daily and
late, and not built for automation. One export covers every customer, so one run per day (or
more) gives the detectors a baseline for each subscription without a call per customer.

Modules: ``export`` (the asynchronous export, streamed: never the whole file in memory),
``series`` (aggregation into subscription-days and their table). See ``docs/detection.md``.
"""
