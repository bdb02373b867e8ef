"""The sub-commands of `python -m training`, one module each: its arguments and its handler
together, in a `Command`; training/cli.py lists them in one table."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


class CommandError(Exception):
    """What the command was given cannot be done; the message says why and names the input."""


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    """Adds the command's arguments to its sub-parser."""
    run: Callable[[argparse.Namespace], int]
    """Does the work (heavy imports inside, so errors in arguments come fast); exit status.
    A DatasetError or CommandError is the user's to fix: main prints it and exits 2."""
