"""Subgraph checkpoints (`Checkpoint.checkpoint_ns`), the store (`StoreItem`) and what runs
streamed (`RunOutput`)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("orchestration", "0003_run_answered"),
    ]

    operations = [
        migrations.AddField(
            model_name="checkpoint",
            name="checkpoint_ns",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.CreateModel(
            name="StoreItem",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("namespace", models.CharField(max_length=500)),
                ("key", models.CharField(max_length=200)),
                ("value", models.BinaryField()),
                ("created_at", models.DateTimeField()),
                ("updated_at", models.DateTimeField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("namespace", "key"), name="store_item_unique_key")
                ],
                "indexes": [models.Index(fields=["namespace", "id"], name="store_item_namespace")],
            },
        ),
        migrations.CreateModel(
            name="RunOutput",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.IntegerField()),
                ("namespace", models.CharField(blank=True, default="", max_length=200)),
                ("data", models.JSONField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="outputs",
                        to="orchestration.run",
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("run", "seq"), name="run_output_seq")],
            },
        ),
    ]
