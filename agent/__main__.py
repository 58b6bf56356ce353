"""``python -m agent [flags]``: the same as ``floodwatch agent [flags]``."""

import argparse
import sys

from .main import add_agent_parser, run_agent

parser = argparse.ArgumentParser(prog="python -m agent")
add_agent_parser(parser.add_subparsers(dest="command", required=True))
raise SystemExit(run_agent(parser.parse_args(["agent", *sys.argv[1:]])))
