"""The CLI's query commands: ``jobs`` and ``show``, read from the running daemon.

They must start fast (tests/acceptance/test_cli_startup.py): the daemon's client is the
standard library's, and ``jobs`` off a terminal prints a plain table without loading rich.
"""

from __future__ import annotations

import argparse

from batchwatch.cli.command import (
    EXIT_OK,
    AddCommand,
    add_client_options,
    daemon_client,
)
from batchwatch.cli.display import print_json, stdout_is_terminal
from batchwatch.models import MISTRAL_STATUSES
from batchwatch.providers import PROVIDERS

STATUS_CHOICES = tuple(status.value for status in MISTRAL_STATUSES)


def cmd_jobs(args: argparse.Namespace) -> int:
    from batchwatch.cli.daemon_client import tracked_job
    from batchwatch.models import JobStatus

    client = daemon_client(args)
    statuses = [JobStatus(s) for s in args.status or ()]
    listed = client.list_json(statuses, args.model, args.limit, args.provider)
    if args.json:
        print_json(listed)  # as the daemon answered: every field it gives, provider's too
        return EXIT_OK
    found = [tracked_job(item) for item in listed]
    if not stdout_is_terminal():
        from batchwatch.cli.display import plain_jobs_table

        print(plain_jobs_table(found))
        return EXIT_OK
    from batchwatch.cli.display import console, jobs_table

    console().print(jobs_table(found))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from batchwatch.cli.daemon_client import tracked_job

    client = daemon_client(args)
    body = client.job_json(args.job_id)
    job = tracked_job(body)
    transitions = client.transitions(args.job_id)
    samples = client.progress(args.job_id)
    actions = client.actions(args.job_id)
    results = client.results(args.job_id)
    if args.json:
        print_json(
            {
                "job": body,
                "transitions": transitions,
                "progress": samples,
                "actions": actions,
                "results": results,
            }
        )
        return EXIT_OK
    from batchwatch.cli.display import console, job_details
    from batchwatch.cli.results import results_text

    for part in job_details(job, transitions, samples, actions, results_text(results)):
        console().print(part)
    return EXIT_OK


def register(add: AddCommand) -> None:
    jobs = add("jobs", cmd_jobs, "list tracked jobs, newest first")
    add_client_options(jobs)
    jobs.add_argument(
        "--status",
        action="append",
        choices=STATUS_CHOICES,
        help="only jobs in this common status, whatever their provider (repeatable)",
    )
    jobs.add_argument("--model", help="only jobs of this model")
    jobs.add_argument(
        "--provider", choices=PROVIDERS, help="only jobs of this provider's batch API"
    )
    jobs.add_argument("--limit", type=int, default=100, help="at most this many (1-1000)")
    show = add("show", cmd_show, "one job: its fields, transitions and progress")
    add_client_options(show)
    show.add_argument("job_id", metavar="JOB_ID")
