"""The `eventyard` command group, which every CLI module adds its commands to."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="eventyard")
def main() -> None:
    """eventyard: a self-hosted event trigger and tracking server.

    Server commands (serve, worker, migrate, init, users, housekeep, backup, settings, and
    keys create --project) work on the database directly.
    The others talk to a running server over its API: give --url and --key, or set
    EVENTYARD_URL and EVENTYARD_KEY.
    """
