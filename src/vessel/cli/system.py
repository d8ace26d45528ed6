"""System commands: events, info, version, and `system df|prune|events|info`.

Output follows the Docker CLI's lines, columns and wording.
"""

import sys

import click

from vessel.cli.images import render


def _client(obj):
    from vessel.api import Client

    return Client(obj.root, obj.runroot)


# -- events ----------------------------------------------------------------------

@click.command("events")
@click.option("--since", help="Show all events created since timestamp (or duration like 10m).")
@click.option("--until", help="Stream events until this timestamp (or duration).")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided.")
@click.option("--format", "fmt", help="Format output using a Go template subset, or 'json'.")
@click.pass_obj
def events(obj, since, until, filters, fmt):
    """Get real time events from the engine."""
    from vessel.engine import events as recorded

    parsed = recorded.parse_filters(filters)
    start, end = recorded.parse_time(since), recorded.parse_time(until)
    client = _client(obj)
    try:
        for event in recorded.follow(client.engine.state, start, end, parsed):
            if fmt:
                template = "{{json .}}" if fmt == "json" else fmt
                click.echo(render(template, [event.to_docker()]))
            else:
                click.echo(event.line())
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
