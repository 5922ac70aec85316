"""Indexes on the engine's history that monitoring's reads need (the engine's model stays untouched).

``(kind, at)`` serves the daily aggregation and the percentile queries, which read one kind of event
over a time range; ``(task_id, kind)`` already exists as the task foreign-key index.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0001_initial"),
        ("workflows", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS mon_event_kind_at ON workflows_processevent (kind, at)",
            reverse_sql="DROP INDEX IF EXISTS mon_event_kind_at",
        ),
    ]
