"""The role groups, their permissions and the migration that creates them."""

import pytest
from django.contrib.auth.models import Group

from accounts import roles


@pytest.mark.django_db
def test_it_creates_the_seven_role_groups_with_permissions():
    groups = {group.name: group for group in Group.objects.filter(name__in=roles.ALL_ROLES)}
    assert set(groups) == set(roles.ALL_ROLES)
    admin_perms = set(groups[roles.ADMINISTRATOR].permissions.values_list("codename", flat=True))
    assert {"view_auditentry", "change_user", "change_carpark"} <= admin_perms
    agent_perms = set(groups[roles.AGENT].permissions.values_list("codename", flat=True))
    assert "view_carpark" in agent_perms
    assert "change_carpark" not in agent_perms


@pytest.mark.django_db
def test_it_never_grants_car_park_responsibility_globally():
    for group in Group.objects.filter(name__in=roles.ALL_ROLES):
        assert not group.permissions.filter(codename="responsible_carpark").exists()


def test_the_migration_table_equals_the_roles_table():
    from importlib import import_module

    migration = import_module("accounts.migrations.0002_create_role_groups")
    assert migration.ROLE_PERMISSIONS == roles.ROLE_PERMISSIONS


@pytest.mark.django_db
def test_responsibility_for_car_parks_comes_from_the_user_and_their_groups(make_user):
    from guardian.shortcuts import assign_perm

    from carparks.tests.factories import CarParkFactory

    mine, team, other = CarParkFactory(), CarParkFactory(), CarParkFactory()
    user = make_user("ana", roles.AGENT, carparks=[mine])
    team_group = Group.objects.create(name="Night shift")
    assign_perm(roles.RESPONSIBLE_PERMISSION, team_group, team)
    user.groups.add(team_group)
    assign_perm(roles.RESPONSIBLE_PERMISSION, make_user("ben", roles.AGENT), other)
    assign_perm("carparks.view_carpark", user, other)  # another permission on a car park counts not
    assert roles.responsible_carpark_ids(user) == {mine.pk, team.pk}
    assert roles.responsible_carpark_ids(make_user("root", is_superuser=True)) is None
