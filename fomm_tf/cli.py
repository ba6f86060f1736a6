"""What every command-line entry point shares.

* Errors: a `FommError` (bad file, flag, data, model) becomes one line
  `error: ...` on stderr and exit status 1; so does every flag-parsing mistake
  (an unknown flag, a bad value, a missing --flagfile, a stray argument). Any
  other exception is a bug and keeps its traceback.
* Signals: SIGINT and SIGTERM raise `errors.Interrupted` in the main thread,
  so whatever was staged (a partial video, an export's staging directory) is
  removed on the way out; the command prints `interrupted: ...` and exits with
  128 + the signal number, as shells expect.
* The model flags (--flagfile / --config, --checkpoint) and how a model is
  built from them.
"""

import contextlib
import os
import signal
import sys
import time

from absl import app
from absl import flags
from absl import logging

from fomm_tf import builtin
from fomm_tf import errors
from fomm_tf.config import flagfiles
from fomm_tf.config import fomm_config


def print_error(message, prefix="error"):
  """Prints `prefix: message` as one line on stderr, on a line of its own (after any progress bar)."""
  sys.stdout.flush()
  sys.stderr.write(f"{prefix}: {message}\n")
  sys.stderr.flush()


def parse_flags_or_exit(argv, flag_values=flags.FLAGS):
  """absl's flag parsing, with every mistake reported as one `error: ...` line (exit 1)."""
  try:
    remaining = flag_values(argv)
  except flags.Error as error:
    print_error(f"{errors.one_line(error)} (see --helpshort)")
    sys.exit(1)
  if len(remaining) > 1:
    print_error(f"unexpected arguments: {errors.printable(' '.join(remaining[1:]))} (flags are --name=value)")
    sys.exit(1)
  return remaining


# fomm-tf's own code: where a signal may raise (see signals_raise_interrupted).
_OWN_CODE = os.path.dirname(os.path.abspath(__file__)) + os.sep
# How soon a signal that arrived elsewhere is tried again, and how long it waits for fomm-tf's code at most (a
# command whose main thread stays in another library, as the web app's server loop does, is interrupted there).
_RETRY_SECONDS = 0.05
_MAX_WAIT_SECONDS = 1.0


@contextlib.contextmanager
def signals_raise_interrupted(received=None):
  """Within the block, SIGINT and SIGTERM raise errors.Interrupted (in the main thread); each signal number is also
  appended to `received`.

  The exception is raised while fomm-tf's own Python code runs: a signal that arrives in another library's Python
  code is tried again every _RETRY_SECONDS (SIGALRM), for up to _MAX_WAIT_SECONDS. TensorFlow's native code calls
  back into Python (its C++ nest.flatten imports modules), and an exception raised in such a callback leaves the
  native code as a SystemError whose traceback TensorFlow prints itself.
  """
  pending = []  # (the first signal's number, when it arrived)

  def raise_in_own_code(frame):
    signum, since = pending[0]
    elsewhere = frame is not None and not frame.f_code.co_filename.startswith(_OWN_CODE)
    if elsewhere and time.monotonic() - since < _MAX_WAIT_SECONDS:
      signal.setitimer(signal.ITIMER_REAL, _RETRY_SECONDS)
      return
    # Raised once: no retry may interrupt the clean-up that the exception starts (a later signal raises anew).
    signal.setitimer(signal.ITIMER_REAL, 0)
    pending.clear()
    raise errors.Interrupted(signum)

  def handler(signum, frame):
    if received is not None:
      received.append(signum)
    if not pending:
      pending.append((signum, time.monotonic()))
    raise_in_own_code(frame)

  def retry(signum, frame):
    del signum
    if pending:
      raise_in_own_code(frame)

  previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
  previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, retry)
  try:
    yield
  finally:
    signal.setitimer(signal.ITIMER_REAL, 0)
    for s, old in previous.items():
      signal.signal(s, old)


def run_command(run, handle_signals=True):
  """Calls run(); a FommError becomes `error: ...` and exit 1, a signal `interrupted: ...` and 128 + signum."""
  received = []
  try:
    if handle_signals:
      with signals_raise_interrupted(received):
        return run()
    return run()
  except errors.FommError as error:
    print_error(str(error))
    sys.exit(1)
  except errors.Interrupted as interrupted:
    print_error(str(interrupted), prefix="interrupted")
    sys.exit(128 + interrupted.signum)
  except Exception:  # pylint: disable=broad-except
    if not received:
      raise
    # The handler's Interrupted, raised while native code (TensorFlow tracing) was running, can reach here as
    # another exception (CPython's SystemError "bad argument to internal function"); the signal is what happened,
    # and the staged output was removed on the way out as for any exception.
    print_error(str(errors.Interrupted(received[0])), prefix="interrupted")
    sys.exit(128 + received[0])


def invoke(define_flags, run, argv, flag_values, handle_signals=True, before_run=None):
  """Runs a command in this process on fresh `flag_values`, as its `main()` would (tests use this)."""
  define_flags(flag_values)
  parse_flags_or_exit(argv, flag_values)
  if before_run is not None:
    before_run(flag_values)
  return run_command(lambda: run(flag_values), handle_signals)


def main_function(define_flags, run, handle_signals=True, before_run=None):
  """A console-script `main()`: defines the flags, parses sys.argv (errors as one line) and runs."""

  def main():
    define_flags(flags.FLAGS)

    def absl_main(argv):
      del argv
      if before_run is not None:
        before_run(flags.FLAGS)
      run_command(lambda: run(flags.FLAGS), handle_signals)

    app.run(absl_main, flags_parser=lambda argv: parse_flags_or_exit(argv, flags.FLAGS))

  return main


# ----------------------------------------------------------------------------
# Model flags.


def define_model_flags(flag_values, checkpoint_help="Official .pth.tar or a checkpoint of this project."):
  """The config flags (for --flagfile), --config and --checkpoint."""
  flagfiles.define_flags(flag_values)
  flags.DEFINE_string("config",
                      None,
                      "Config name (e.g. vox-256) or flagfile; alternative to --flagfile.",
                      flag_values=flag_values)
  if checkpoint_help is not None:
    flags.DEFINE_string("checkpoint", None, checkpoint_help, flag_values=flag_values)


# A model is described by these sections; --crop alone (an animation flag) names no model.
MODEL_SECTIONS = ("model", "kp_detector", "generator", "dense_motion", "discriminator")


def config_flags_given(flag_values):
  """Whether --config or a model flag (e.g. from --flagfile) was given; reads no file."""
  return flag_values.config is not None or any(
      fomm_config.FLAG_FIELDS[name].section in MODEL_SECTIONS for name in flagfiles.given_config_flags(flag_values))


def resolve_config(flag_values):
  """The config named by --config (with explicitly given config flags on top), or the one the flags spell out.

  Returns None when neither --config nor a model flag (e.g. from --flagfile) was given.
  """
  given = flagfiles.given_config_flags(flag_values)
  if not config_flags_given(flag_values):
    return None
  if flag_values.config is not None:
    if not flag_values.config:
      raise errors.UsageError("--config is empty; pass a config name such as vox-256 or a .flags path")
    explicit = flagfiles.config_from_flag_values(flag_values, only=given)
    return flagfiles.load_config(flag_values.config, **{name: explicit.flat()[name] for name in given})
  return flagfiles.config_from_flag_values(flag_values)


def checkpoint_flag(flag_values):
  """--checkpoint's value: None when the flag was not given; an empty value is an error, not random weights."""
  value = flag_values.checkpoint
  if value is None:
    return None
  if not value.strip():
    raise errors.UsageError("--checkpoint is empty (an unset shell variable?); give a checkpoint path, or leave "
                            "the flag out for random weights")
  return value


def builtin_weights(cfg):
  """The shipped weights of the built-in model whose networks `cfg` describes (synthetic-128,
  synthetic-128-lite), or None for any other config: what a command loads when no --checkpoint is given."""
  name = builtin.builtin_name(cfg)
  return builtin.weights_path(name) if name is not None else None


def load_model(cfg, checkpoint, dtype=None):
  """A FommModel for inference with `checkpoint` loaded. Without one, a built-in model's config (synthetic-128,
  synthetic-128-lite) gets its shipped weights, and any other config random weights, with a warning."""
  from fomm_tf.checkpoint import loading  # pylint: disable=import-outside-toplevel
  if not checkpoint:
    name = builtin.builtin_name(cfg)
    if name is not None:
      print(f"no --checkpoint: using the built-in {name} model's weights (trained on synthetic puppets)")
      return builtin.load_builtin_model(name, dtype=dtype, config=cfg)
    logging.warning("no --checkpoint: the networks have random weights")
  return loading.load_model(cfg, checkpoint=checkpoint or None, dtype=dtype)


def converts_keras_model(flag_values):
  """Whether --backend is OpenVINO on the Keras model converted in memory (--backend=openvino, no --export_dir)."""
  return flag_values.backend == "openvino" and not flag_values.export_dir


def load_model_from_flags(flag_values, dtype=None):
  """(config, FommModel for inference) from the config flags and --checkpoint."""
  checkpoint = checkpoint_flag(flag_values)
  cfg = resolve_config(flag_values)
  if cfg is None:
    raise errors.UsageError("no model config: pass --flagfile=configs/NAME.flags or --config=NAME")
  return cfg, load_model(cfg, checkpoint, dtype)


def require_positive(flag_values, *names):
  """Each named integer flag must be >= 1 when set."""
  for name in names:
    value = flag_values[name].value
    if value is not None and value < 1:
      raise errors.UsageError(f"--{name} must be >= 1, got {value}")
