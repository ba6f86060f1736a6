"""What every command-line entry point shares: one-line errors and exit status 1."""

import sys

from absl import app


def one_line(error):
  """The first line of an exception's message (its type name when it has none)."""
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def run_main(argv, run, errors):
  """Calls run(); a user error in `errors` becomes 'error: ...' on stderr and exit status 1."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    return run()
  except errors as e:
    print(f"error: {one_line(e)}", file=sys.stderr)
    sys.exit(1)
