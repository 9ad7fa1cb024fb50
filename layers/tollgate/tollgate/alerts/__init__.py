"""Budget threshold alerts: fire once per (budget, period, threshold), deliver by webhook and EventBridge.

``thresholds`` (what a budget's use crosses), ``watch.AlertWatch`` (records crossings: the data plane's
side), ``outbox.Outbox`` (delivers and retries), ``channels`` (webhook, EventBridge), ``urls`` (where a
webhook may go). Nothing here is built at import; ``AppContext.build`` wires it. See docs/alerts.md.
"""
