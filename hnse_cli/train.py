"""Placeholder until this subcommand is built."""
from model.errors import HNSEError


def add_arguments(parser):
    pass


def run(args):
    raise HNSEError("this subcommand is not built yet")
