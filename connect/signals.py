"""Signals connect sends; monitoring turns incidents into alerts."""

from django.dispatch import Signal

# Sent (after commit) when a CPMS sync, push or reconciliation failed for good: sender=SyncRun, run=<SyncRun>.
sync_incident = Signal()
