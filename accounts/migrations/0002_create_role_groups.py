"""Create the seven role groups and grant them the model permissions that exist at this point.

Permissions of models added later are granted by accounts.apps' post_migrate handler with the same
table (accounts.roles.ROLE_PERMISSIONS); this migration keeps its own copy and never imports app code.
"""

from fnmatch import fnmatchcase

from django.db import migrations

ROLE_PERMISSIONS = {
    "Administrator": [
        "auth.*",
        "accounts.*",
        "workflows.*",
        "carparks.*",
        "billing.*",
        "connect.*",
        "monitoring.*",
        "django_otp.*",
        "otp_totp.*",
        "otp_static.*",
    ],
    "Workflow admin": ["workflows.*", "carparks.view_*", "connect.view_*", "monitoring.view_*"],
    "Supervisor": [
        "workflows.view_*",
        "workflows.change_task",
        "workflows.change_process",
        "carparks.view_*",
        "carparks.change_contract",
        "carparks.change_customer",
        "billing.view_*",
        "monitoring.view_*",
    ],
    "Back-office agent": [
        "workflows.view_task",
        "workflows.change_task",
        "workflows.view_process",
        "carparks.view_*",
        "carparks.add_customer",
        "carparks.change_customer",
        "carparks.add_vehicle",
        "carparks.change_vehicle",
        "carparks.add_contract",
        "carparks.change_contract",
        "carparks.add_credential",
        "carparks.change_credential",
    ],
    "Finance": ["billing.*", "carparks.view_*", "workflows.view_task", "workflows.change_task", "monitoring.view_*"],
    "Customer care": [
        "carparks.view_*",
        "carparks.add_customer",
        "carparks.change_customer",
        "carparks.add_vehicle",
        "carparks.change_vehicle",
        "carparks.add_case",
        "carparks.change_case",
        "billing.view_*",
        "workflows.view_task",
        "workflows.change_task",
    ],
    "Car-park manager": [
        "carparks.view_*",
        "carparks.change_carpark",
        "carparks.add_product",
        "carparks.change_product",
        "connect.view_*",
        "monitoring.view_*",
        "workflows.view_task",
        "workflows.change_task",
    ],
}


def create_role_groups(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations (post_migrate); create those of the
    # models that exist now so the groups get them in this migration already.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permissions = list(Permission.objects.select_related("content_type"))
    for role, patterns in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for permission in permissions:
            name = f"{permission.content_type.app_label}.{permission.codename}"
            if name != "carparks.responsible_carpark" and any(fnmatchcase(name, p) for p in patterns):
                wanted.append(permission)
        group.permissions.add(*wanted)


def remove_role_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLE_PERMISSIONS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_audit_entry"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("carparks", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
