"""Fewer index entries per review (issue 14): `review_status_created` and the thread's own index
are served by `review_inbox_order` and `review_thread_created`; claimed_by and reanswer_of,
unset on most reviews, are indexed where set."""


import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0006_decision_ignore'),
        ('orchestration', '0010_fewer_index_entries'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # Only the indexes change: the AlterFields are state (on SQLite Django would rebuild
        # the tables, dropping their triggers; on PostgreSQL it would drop and re-check
        # the foreign keys and drop every index on the column, unique ones included).
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='reviewrequest',
                    name='claimed_by',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='reviewrequest',
                    name='reanswer_of',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='reanswers', to='approvals.reviewrequest'),
                ),
                migrations.AlterField(
                    model_name='reviewrequest',
                    name='thread',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='reviews', to='orchestration.thread'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "approvals_reviewrequest_thread_id_d6393e0d"',
                    'CREATE INDEX "approvals_reviewrequest_thread_id_d6393e0d" ON "approvals_reviewrequest" ("thread_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "approvals_reviewrequest_claimed_by_id_a1b5a792"',
                    'CREATE INDEX "approvals_reviewrequest_claimed_by_id_a1b5a792" ON "approvals_reviewrequest" ("claimed_by_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "approvals_reviewrequest_reanswer_of_id_001df66c"',
                    'CREATE INDEX "approvals_reviewrequest_reanswer_of_id_001df66c" ON "approvals_reviewrequest" ("reanswer_of_id")',
                ),
            ],
        ),
        migrations.RemoveIndex(
            model_name='reviewrequest',
            name='review_status_created',
        ),
        migrations.AddIndex(
            model_name='reviewrequest',
            index=models.Index(condition=models.Q(('claimed_by__isnull', False)), fields=['claimed_by'], name='review_claimed_by'),
        ),
        migrations.AddIndex(
            model_name='reviewrequest',
            index=models.Index(condition=models.Q(('reanswer_of__isnull', False)), fields=['reanswer_of'], name='review_reanswer_of'),
        ),
    ]
