"""The `leadbridge` command. Every command exits non-zero with one clear line on bad input."""

from __future__ import annotations

import functools
import signal
import sys
import threading
from pathlib import Path

import click

from service import init_backends
from service.accounts.users import create_user as create
from service.accounts.users import set_password as set_it
from service.core import config as config_module
from service.core import logs
from service.core.config import ConfigError
from service.core.db import utcnow
from service.core.errors import DomainError, InvalidInput
from service.core.settings import Settings
from service.intake.importer import fields_to_overwrite, import_csv
from service.intake.keys import create_key
from service.leads.scoring import Policy, rescore_all
from service.ops.activity_partitions import partition_activity
from service.ops.demo import load_demo
from service.ops.migrations import current_version, migrate
from service.ops.server import serve
from service.ops.up import run
from workers.mailbox import Mailbox, MailboxError, receive_imap
from workers.runner import make_scheduler, make_worker, sweeps_named


def clear_errors(command):
    """Turn configuration and domain errors into one `Error: …` line and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ConfigError, DomainError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def settings_from(ctx: click.Context, **overrides) -> dict:
    return config_module.load(ctx.obj["config"], overrides or None)


def backends(ctx: click.Context, **overrides) -> dict:
    """Load settings and bind the database and queue for this process."""

    settings = settings_from(ctx, **overrides)
    init_backends(settings, config_module.secret_key(settings))
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="LEADBRIDGE_CONFIG", default=None,
              help="Config file (default ./config.toml).")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Leadbridge: MQL handoffs from marketing to sales, by email."""
    ctx.obj = {"config": config_path}


@main.command("init-db")
@click.pass_context
@clear_errors
def init_db(ctx: click.Context) -> None:
    """Create the schema or apply pending migrations."""

    backends(ctx)
    applied = migrate()
    for name in applied:
        click.echo(f"applied {name}")
    click.echo(f"schema at version {current_version()}")


@main.command("create-user")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(["admin", "marketer", "sales_manager"]))
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
@clear_errors
def create_user(ctx: click.Context, email: str, role: str, password_stdin: bool) -> None:
    """Create a panel user (password from a prompt or --password-stdin)."""

    backends(ctx)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = create(email, role=role, password=password, now=utcnow())
    click.echo(f"created {user.role} {user.email}")


@main.command("set-password")
@click.argument("email")
@click.pass_context
@clear_errors
def set_password(ctx: click.Context, email: str) -> None:
    """Set a panel user's password, read from standard input (a prompt on a terminal);
    ends every session of the user."""

    backends(ctx)
    if sys.stdin.isatty():
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    user = set_it(email, password)
    click.echo(f"password set for {user.email}; every session of theirs has ended")


@main.command()
@click.pass_context
@clear_errors
def web(ctx: click.Context) -> None:
    """Run the web server (gunicorn)."""

    settings = settings_from(ctx)
    config_module.secret_key(settings)  # refused here in one line, not in each worker
    serve(ctx.obj["config"], settings)


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty.")
@click.pass_context
@clear_errors
def worker(ctx: click.Context, burst: bool) -> None:
    """Run an RQ worker."""

    require_redis(backends(ctx))
    make_worker().work(burst=burst, with_scheduler=True)


@main.command()
@click.pass_context
@clear_errors
def cron(ctx: click.Context) -> None:
    """Queue the periodic sweeps as RQ jobs, each at its interval."""

    require_redis(backends(ctx))
    make_scheduler().start()


@main.command()
@click.option("--once", is_flag=True, help="Read the mailbox once, say how many messages "
                                           "were read, and stop.")
@click.pass_context
@clear_errors
def mailbox(ctx: click.Context, once: bool) -> None:
    """Read the IMAP mailbox replies come to (inbound.imap_url): each message is received,
    then moved to inbound.imap_processed_folder. Runs until stopped, waiting for mail with
    IDLE where the server offers it, else every inbound.imap_poll_seconds."""

    settings = settings_from(ctx)
    if not settings.inbound.imap_url:
        raise ConfigError("inbound.imap_url is empty: set it to the mailbox replies come to, "
                          "like imaps://user@host:993/INBOX")
    init_backends(settings, config_module.secret_key(settings))
    logs.configure(settings.logging.level, settings.logging.format)
    reader = Mailbox(settings.inbound)
    if once:
        try:
            read = reader.poll_once(receive_imap)
        except MailboxError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            reader.close()
        click.echo(f"{read} message(s) read from {reader.folder}")
        return
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    reader.watch(receive_imap, stop)


@main.command()
@click.option("--only", metavar="NAME", help="Run only the sweep of this name.")
@click.pass_context
@clear_errors
def sweep(ctx: click.Context, only: str | None) -> None:
    """Run the periodic sweeps once now (unsent mail, SLA actions, nurture steps, report
    rollups, the weekly digest, delivery ids past the dedupe window), one line each; cron
    runs them on its own."""

    chosen = sweeps_named(only)
    backends(ctx)
    for each in chosen:
        click.echo(f"{each.name}: {each.outcome(each.run())}")


@main.command("partition-activity")
@click.option("--months-ahead", type=click.IntRange(1, 120), default=3, show_default=True,
              help="Months after the current one that get their partition now.")
@click.pass_context
@clear_errors
def partition_activity_command(ctx: click.Context, months_ahead: int) -> None:
    """PostgreSQL only: turn the activity table into monthly partitions (once), and create
    the coming months' partitions (every run; run it monthly from cron)."""

    backends(ctx)
    click.echo(partition_activity(months_ahead=months_ahead, now=utcnow()).summary())


@main.command()
@click.option("--port", type=int, help="Web port (overrides web.port).")
@click.option("--demo", is_flag=True, help="Load a year of demo data into an empty database.")
@click.pass_context
@clear_errors
def up(ctx: click.Context, port: int | None, demo: bool) -> None:
    """Run everything: web, worker, cron and, without redis.url, an embedded Valkey."""

    sys.exit(run(ctx.obj["config"], port, demo=demo))


@main.command()
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True,
              help="How many days of history to make.")
@click.pass_context
@clear_errors
def demo(ctx: click.Context, days: int) -> None:
    """Load realistic demo data (a year by default) into an empty database."""

    settings = backends(ctx)
    migrate()
    click.echo(load_demo(settings, days=days))


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD",
              help="Map a CSV column to a lead field (repeatable).")
@click.option("--update", "updates", multiple=True, metavar="FIELD[,FIELD…]",
              help="Overwrite these fields of leads that exist already (repeatable); "
                   "otherwise the file only fills their empty fields.")
@click.option("--source", default="import", show_default=True, help="Source recorded on new leads.")
@click.option("--skipped", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write skipped rows (default FILE.skipped.csv).")
@click.pass_context
@clear_errors
def import_leads(ctx: click.Context, file: Path, maps: tuple[str, ...],
                 updates: tuple[str, ...], source: str, skipped: Path | None) -> None:
    """Import leads from a CSV file, deduplicated by email. Leads that exist already keep
    their values: the file fills their empty fields, and overwrites only --update fields."""
    from tqdm import tqdm


    if not file.exists():
        raise InvalidInput(f"no such file: {file}")
    mapping = {}
    for entry in maps:
        column, _, field = entry.partition("=")
        if not column or not field:
            raise InvalidInput(f"--map takes COLUMN=FIELD, got {entry!r}")
        mapping[column] = field
    overwrite = fields_to_overwrite(updates)
    backends(ctx)
    with file.open("rb") as raw:
        total = max(sum(block.count(b"\n") for block in iter(lambda: raw.read(1 << 20), b"")) - 1,
                    0)
    with tqdm(total=total, unit=" rows", desc="importing", disable=None) as bar:
        report = import_csv(file, source=source, now=utcnow(), mapping=mapping,
                            overwrite=overwrite, skipped_path=skipped, progress=bar.update)
    click.echo(str(report))


@main.command("create-integration-key")
@click.argument("kind", type=click.Choice(["webhook", "write_key"]))
@click.argument("source")
@click.pass_context
@clear_errors
def create_integration_key(ctx: click.Context, kind: str, source: str) -> None:
    """Create a webhook signing secret or a tracking write key (printed once)."""

    settings = backends(ctx)
    sources = (list(settings.webhooks.sources) if kind == "webhook"
               else settings.tracking.sources)
    _, secret = create_key(kind, source, sources=sources, actor="cli", now=utcnow())
    click.echo(secret)


@main.command("create-api-key")
@click.argument("name")
@click.option("--owner", required=True, metavar="EMAIL",
              help="Who the key acts for: promotions made with it are theirs, and they hear "
                   "sales' decisions on them.")
@click.pass_context
@clear_errors
def create_api_key(ctx: click.Context, name: str, owner: str) -> None:
    """Create a key for the JSON API (printed once); send it as Authorization: Bearer KEY."""

    backends(ctx)
    _, secret = create_key("api", name, sources=[name], actor="cli", now=utcnow(),
                           owner=owner)
    click.echo(secret)


@main.command()
@click.pass_context
@clear_errors
def rescore(ctx: click.Context) -> None:
    """Recompute every lead's score (after changing [scoring] points or half-life)."""

    settings = backends(ctx)
    click.echo(f"rescored {rescore_all(Policy.from_settings(settings), now=utcnow())} leads")


def require_redis(settings: Settings) -> None:
    if not settings.redis.url:
        raise ConfigError("redis.url is empty: set it, or use `leadbridge up`, which starts "
                          "an embedded Valkey")


if __name__ == "__main__":
    main()
