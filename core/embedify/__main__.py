"""`python -m embedify` runs the command line."""

from embedify.cli import cli

cli()
