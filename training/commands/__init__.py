"""The sub-commands of `python -m training`, one module each: its arguments and its handler
together, in a `Command`; training/cli.py lists them in one table."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    """Adds the command's arguments to its sub-parser."""
    run: Callable[[argparse.Namespace], int]
    """Does the work (heavy imports inside, so errors in arguments come fast); exit status.
    A DatasetError or ValueError is the user's to fix: main prints it and exits 2."""
