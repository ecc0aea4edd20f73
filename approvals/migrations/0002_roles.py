"""Create the roles (groups "viewer", "reviewer", "ops", "admin") with their permissions."""

from __future__ import annotations

from django.contrib.auth.management import create_permissions
from django.db import migrations

from approvals.roles import ROLES, ensure_roles


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); create them now
    # so the groups can hold them on a fresh database.
    app_config = apps.get_app_config("approvals")
    app_config.models_module = True  # a migration's app config stub has no module
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    # the roles as of this migration: later permissions are added by the migration creating them
    roles = {role: [c for c in codenames if c != "start_thread"] for role, codenames in ROLES.items()}
    ensure_roles(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"), roles)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
