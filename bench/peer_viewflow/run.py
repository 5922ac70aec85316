"""The viewflow peer of bench/engine.py: the same season-contract shape on django-viewflow 2.4.0.

Run by the peer's own interpreter (``var/peer-venv``, made by ``bench/engine.py --peer``; viewflow is
AGPL and no dependency of ParkingHQ Business Workflow):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/phq_engine var/peer-venv/bin/python \
        bench/peer_viewflow/run.py [--processes 2000]

It works in a throw-away database ``<name>_peer`` next to DATABASE_URL's (created, migrated and
dropped) and drives N processes end to end in ONE process, each step as viewflow runs it:

- start: ``SeasonFlow.start.run(...)`` (a StartHandle, one transaction);
- a user task's claim is what viewflow's assign view does on POST (``wrap_task_view``): under the
  flow lock (``select_for_update_lock``) and a transaction, load the task, check its flow and
  ``can_assign``, ``activation.assign(user)``;
- its completion is what the task view does on POST (``wrap_view`` + ``UpdateProcessView``): under
  the lock and a transaction, load the task, check its flow and ``can_execute``,
  ``activation.start(request)``, save the process (the form), ``activation.execute()``;
- the system step is a ``flow.Handle`` run as a Celery job would run it: load the task by the id the
  message carries, ``SeasonFlow.activate_credential.run(task)`` (lock + its own transaction).

As in bench/engine.py the agent's user object (and so its permission cache) is loaded once, new task
ids are taken from a signal (no query), and SQL statements are counted with
``connection.execute_wrapper``. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

from bench._db import bench_database  # noqa: E402


def drive(processes: int) -> dict:
    from django.contrib.auth.models import Group, Permission, User
    from django.core.exceptions import PermissionDenied
    from django.db import connection, transaction
    from django.db.models.signals import post_save
    from season_peer.flows import SeasonFlow
    from season_peer.models import SeasonProcess
    from viewflow.workflow.models import Task
    from viewflow.workflow.status import PROCESS

    group = Group.objects.create(name="Back-office agent")
    group.permissions.add(Permission.objects.get(codename="back_office", content_type__app_label="season_peer"))
    User.objects.create_user("bench-agent", first_name="Bench").groups.add(group)
    user = User.objects.get(username="bench-agent")
    request = SimpleNamespace(user=user, method="POST")

    pending: dict[str, int] = {}  # node name -> id of its task just created

    def task_created(sender, instance, created, **kwargs):  # type: ignore[no-untyped-def]
        if created:
            pending[instance.flow_task.name] = instance.pk

    post_save.connect(task_created, sender=Task, weak=False)

    def claim(node, process_pk: int) -> None:  # viewflow's assign view, POST
        task_pk = pending.pop(node.name)
        with SeasonFlow.lock(process_pk), transaction.atomic():
            task = Task.objects.get(pk=task_pk)
            if task.process.flow_class != SeasonFlow:
                raise LookupError(task_pk)
            activation = node.activation_class(task)
            if not node.can_assign(request.user, task=task):
                raise PermissionDenied
            activation.assign(request.user)
        pending[node.name] = task_pk

    def complete(node, process_pk: int, **form) -> None:  # viewflow's task view with UpdateProcessView, POST
        task_pk = pending.pop(node.name)
        with SeasonFlow.lock(process_pk), transaction.atomic():
            task = Task.objects.get(pk=task_pk)
            if task.process.flow_class != SeasonFlow:
                raise LookupError(task_pk)
            activation = node.activation_class(task)
            if not node.can_execute(request.user, task=task):
                raise PermissionDenied
            activation.start(request)
            process = activation.process
            for name, value in form.items():
                setattr(process, name, value)
            process.save()  # form.save()
            activation.execute()

    def run_job() -> None:  # the Celery job: the task id from the message, the node runs it
        task = Task.objects.select_related("process").get(pk=pending.pop("activate_credential"))
        SeasonFlow.activate_credential.run(task)

    statements = 0

    def counter(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    tasks_done = 0
    cpu = time.process_time()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        for n in range(processes):
            process = SeasonFlow.start.run(deposit=n % 3 * 50, contract_id=n)
            claim(SeasonFlow.review, process.pk)
            if n % 10 == 0:
                complete(SeasonFlow.review, process.pk, approved=False, note="")
                tasks_done += 1
                continue
            complete(SeasonFlow.review, process.pk, approved=True, note="ok")
            run_job()
            claim(SeasonFlow.confirm_payment, process.pk)
            complete(SeasonFlow.confirm_payment, process.pk)
            tasks_done += 2
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu

    completed = SeasonProcess.objects.filter(status=PROCESS.DONE).count()
    rows = SeasonProcess.objects.count() + Task.objects.count() + Task.previous.through.objects.count()
    credentials = SeasonProcess.objects.filter(data__credential_id__startswith="C-").count()
    return {
        "engine": "django-viewflow 2.4.0",
        "processes": processes,
        "workers": 1,
        "completed": completed,
        "credentials": credentials,
        "seconds": round(elapsed, 2),
        "processes_per_s": round(processes / elapsed, 1),
        "tasks_per_s": round(tasks_done / elapsed, 1),
        "sql_per_process": round(statements / processes, 2),
        "rows_per_process": round(rows / processes, 2),
        "driver_cpu_ms_per_process": round(cpu * 1000 / processes, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2000)
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/parkinghq")
    if not url.startswith(("postgres://", "postgresql://")):
        print("bench/peer_viewflow/run.py needs DATABASE_URL to point at PostgreSQL", file=sys.stderr)
        return 2
    peer_url, admin_url, peer_name = bench_database(url, "_peer")
    import psycopg

    admin = admin_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{peer_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{peer_name}"')
    os.environ["PEER_DATABASE_URL"] = peer_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "peer_settings"
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        figures = drive(args.processes)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{peer_name}" WITH (FORCE)')
    print(json.dumps(figures, indent=2))
    if figures["completed"] != args.processes or figures["credentials"] != args.processes - (args.processes + 9) // 10:
        print(f"only {figures['completed']} of {args.processes} processes completed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
