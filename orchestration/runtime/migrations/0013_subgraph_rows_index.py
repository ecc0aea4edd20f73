"""An index of a thread's subgraph checkpoints only (`checkpoint_ns` not empty).

Why: the thread page, each unfold and each live update ask for the thread's subgraph
checkpoints (`approvals.selectors.subgraph_rows`), and the unique index (thread,
checkpoint_id) made that a read of every row of the thread, however few are a subgraph's:
2.5-3.3 ms of PostgreSQL's time per request on a 10,000-checkpoint thread
(`manage.py measure_pages`; 0.06 ms with this index), 2.8 ms on SQLite (0.006 ms). Partial,
so a root checkpoint (every superstep's put) adds no entry.

On SQLite this is a plain CREATE INDEX: the table is not rebuilt, so migration 0009's head
trigger stays.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0012_sqlite_checkpoint_parent_unindexed")]

    operations = [
        migrations.AddIndex(
            model_name="checkpoint",
            index=models.Index(
                condition=~models.Q(checkpoint_ns=""),
                fields=["thread", "checkpoint_id"],
                name="checkpoint_subgraph_rows",
            ),
        ),
    ]
