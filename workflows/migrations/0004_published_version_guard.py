"""A PostgreSQL trigger refuses changes to a published or retired version's content, so not even a
QuerySet.update() or raw SQL can alter what running processes execute (the model's save() refuses
it too, with a readable error)."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION workflows_version_immutable() RETURNS trigger AS $$
BEGIN
    IF OLD.state <> 'draft' AND (
        NEW.spec IS DISTINCT FROM OLD.spec OR NEW.graph IS DISTINCT FROM OLD.graph
        OR NEW.bpmn_xml IS DISTINCT FROM OLD.bpmn_xml OR NEW.checksum IS DISTINCT FROM OLD.checksum
        OR NEW.number IS DISTINCT FROM OLD.number OR NEW.definition_id IS DISTINCT FROM OLD.definition_id
    ) THEN
        RAISE EXCEPTION 'workflow version % is % and cannot be changed', OLD.id, OLD.state
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.state <> 'draft' AND NEW.state = 'draft' THEN
        RAISE EXCEPTION 'workflow version % is % and cannot become a draft again', OLD.id, OLD.state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS workflows_version_immutable ON workflows_workflowversion;
CREATE TRIGGER workflows_version_immutable BEFORE UPDATE ON workflows_workflowversion
    FOR EACH ROW EXECUTE FUNCTION workflows_version_immutable();
"""
DROP = """
DROP TRIGGER IF EXISTS workflows_version_immutable ON workflows_workflowversion;
DROP FUNCTION IF EXISTS workflows_version_immutable();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("workflows", "0003_absence")]
    operations = [migrations.RunPython(create, drop)]
