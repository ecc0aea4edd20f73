"""Fewer index entries per review cycle (issue 14): indexes that a longer index with the same
leading column already serves are dropped (event, run: thread), foreign keys that most rows
leave NULL are indexed where set (event.actor, run.previous), and thread.graph_name loses its
PostgreSQL LIKE twin. A run's and a thread's indexed columns change several times per run,
and each such update writes an entry in every index of the table."""


import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orchestration', '0009_sqlite_head_trigger'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Only the indexes change: the AlterFields are state (on SQLite Django would rebuild
        # the tables, dropping their triggers; on PostgreSQL it would drop and re-check
        # the foreign keys and drop every index on the column, unique ones included).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='event',
                    name='actor',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='event',
                    name='thread',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='events', to='orchestration.thread'),
                ),
                migrations.AlterField(
                    model_name='run',
                    name='previous',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='orchestration.run'),
                ),
                migrations.AlterField(
                    model_name='run',
                    name='thread',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='runs', to='orchestration.thread'),
                ),
                migrations.AlterField(
                    model_name='thread',
                    name='graph_name',
                    field=models.CharField(blank=True, max_length=100),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "orchestration_event_thread_id_512065e8"',
                    'CREATE INDEX "orchestration_event_thread_id_512065e8" ON "orchestration_event" ("thread_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "orchestration_event_actor_id_7cdba3ce"',
                    'CREATE INDEX "orchestration_event_actor_id_7cdba3ce" ON "orchestration_event" ("actor_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "orchestration_run_thread_id_26f48c76"',
                    'CREATE INDEX "orchestration_run_thread_id_26f48c76" ON "orchestration_run" ("thread_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "orchestration_run_previous_id_0de4e1fd"',
                    'CREATE INDEX "orchestration_run_previous_id_0de4e1fd" ON "orchestration_run" ("previous_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "orchestration_thread_graph_name_d5dda748"',
                    'CREATE INDEX "orchestration_thread_graph_name_d5dda748" ON "orchestration_thread" ("graph_name")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "orchestration_thread_graph_name_d5dda748_like"',
                    migrations.RunSQL.noop,
                ),
            ],
        ),
        migrations.AddIndex(
            model_name='event',
            index=models.Index(condition=models.Q(('actor__isnull', False)), fields=['actor'], name='event_actor'),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(condition=models.Q(('previous__isnull', False)), fields=['previous'], name='run_previous'),
        ),
        migrations.AddIndex(
            model_name='thread',
            index=models.Index(fields=['graph_name'], name='thread_graph_name'),
        ),
    ]
