"""Fewer index entries per checkpoint: every superstep inserts a `Checkpoint` row and
`FieldVersion` rows, and pays for each of their indexes.

- `Checkpoint.thread`, `FieldVersion.thread` and `PendingWrite.checkpoint` lose their own
  foreign-key indexes: each is the first column of the model's unique constraint, whose index
  serves the same lookups (and the history, scanned backwards, so `checkpoint_history` goes).
- `Checkpoint.created_by` is set only on `update`/`fork` checkpoints: a partial index where it
  is set (what deleting a user needs) replaces one entry per row.

The foreign-key indexes are dropped by name as the database reports them (no table rebuild on
SQLite, which `AlterField` would do); the models' state changes with them.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# (model, foreign key) whose single-column index goes.
DROPPED = (
    ("checkpoint", "thread"),
    ("checkpoint", "created_by"),
    ("fieldversion", "thread"),
    ("pendingwrite", "checkpoint"),
)


def _single_column_indexes(schema_editor, model, column):
    return schema_editor._constraint_names(
        model, [column], index=True, unique=False, primary_key=False
    )


def drop_foreign_key_indexes(apps, schema_editor):
    for model_name, field_name in DROPPED:
        model = apps.get_model("orchestration", model_name)
        column = model._meta.get_field(field_name).column
        for name in _single_column_indexes(schema_editor, model, column):
            schema_editor.execute(schema_editor._delete_index_sql(model, name))


def create_foreign_key_indexes(apps, schema_editor):
    for model_name, field_name in DROPPED:
        model = apps.get_model("orchestration", model_name)
        field = model._meta.get_field(field_name)
        if not _single_column_indexes(schema_editor, model, field.column):
            schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))


class Migration(migrations.Migration):
    dependencies = [
        ("orchestration", "0005_worker_process"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(model_name="checkpoint", name="checkpoint_history"),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunPython(drop_foreign_key_indexes, create_foreign_key_indexes),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="checkpoint",
                    name="created_by",
                    field=models.ForeignKey(
                        blank=True, db_index=False, null=True,
                        on_delete=django.db.models.deletion.SET_NULL, related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="checkpoint",
                    name="thread",
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE,
                        related_name="checkpoints", to="orchestration.thread",
                    ),
                ),
                migrations.AlterField(
                    model_name="fieldversion",
                    name="thread",
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE,
                        related_name="field_versions", to="orchestration.thread",
                    ),
                ),
                migrations.AlterField(
                    model_name="pendingwrite",
                    name="checkpoint",
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE,
                        related_name="pending", to="orchestration.checkpoint",
                    ),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="checkpoint",
            index=models.Index(
                condition=models.Q(("created_by__isnull", False)), fields=["created_by"],
                name="checkpoint_created_by",
            ),
        ),
    ]
