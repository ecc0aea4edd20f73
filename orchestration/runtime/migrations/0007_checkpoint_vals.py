"""`Checkpoint.vals`: small field versions in the checkpoint's own row (the Django saver on
SQLite writes them there, so a superstep inserts no `FieldVersion` row). Nullable with no
default: an `ALTER TABLE ... ADD COLUMN` on both SQLite and PostgreSQL, no table rebuild."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("orchestration", "0006_fewer_checkpoint_indexes")]

    operations = [
        migrations.AddField(
            model_name="checkpoint", name="vals", field=models.BinaryField(blank=True, null=True)
        ),
    ]
