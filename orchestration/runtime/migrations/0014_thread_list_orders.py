"""The thread lists read their rows in their order: the pages newest updated first (under a
graph filter too), the API newest created first (alone, or under a status or graph filter),
instead of sorting every matching thread."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orchestration', '0013_subgraph_rows_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='thread',
            index=models.Index(fields=['graph_name', '-updated_at'], name='thread_graph_updated'),
        ),
        migrations.AddIndex(
            model_name='thread',
            index=models.Index(fields=['-created_at', '-id'], name='thread_created'),
        ),
        migrations.AddIndex(
            model_name='thread',
            index=models.Index(fields=['status', '-created_at', '-id'], name='thread_status_created'),
        ),
        migrations.AddIndex(
            model_name='thread',
            index=models.Index(fields=['graph_name', '-created_at', '-id'], name='thread_graph_created'),
        ),
        # graph_name leads thread_graph_updated and thread_graph_created: a probe of either
        # finds the next graph name (selectors.graph_names)
        migrations.RemoveIndex(
            model_name='thread',
            name='thread_graph_name',
        ),
    ]
