"""`flask solve FILE`: solve a Code Jam input file (or `-` for stdin) and print `Case #i: ...`.

Exit status: 0 when every case was solved (or proved impossible), 1 when a case is invalid (its
line says INVALID and why; the others are still answered), and click's 1 for a file that is not
a Code Jam file at all.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.solver import formats, service


@click.command("solve")
@click.argument("source", type=click.File("r", encoding="utf-8"))
@with_appcontext
def solve_command(source) -> None:
    """Solve every case of a Code Jam input file."""
    try:
        outcomes = service.solve_codejam_text(source.read(), endpoint="cli")
    except formats.ProblemFormatError as error:
        raise click.ClickException(str(error)) from None
    click.echo(formats.format_codejam([o.error or o.solution for o in outcomes]), nl=False)
    invalid = sum(o.error is not None for o in outcomes)
    if invalid:
        click.echo(f"Error: {invalid} of {len(outcomes)} cases are invalid", err=True)
        raise SystemExit(1)
