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


def define_model_flags(flag_values, checkpoint_help="Official .pth.tar or a checkpoint of this project."):
  """The config flags (for --flagfile), --config and --checkpoint."""
  from absl import flags
  from fomm_tf import config as config_lib
  config_lib.define_flags(flag_values)
  flags.DEFINE_string("config", None, "Config name (e.g. vox-256) or flagfile; alternative to --flagfile.",
                      flag_values=flag_values)
  if checkpoint_help is not None:
    flags.DEFINE_string("checkpoint", None, checkpoint_help, flag_values=flag_values)


def config_flags_given(flag_values):
  """Whether --config or any config flag (e.g. from --flagfile) was given; reads no file."""
  from fomm_tf import config as config_lib
  return bool(flag_values.config) or any(flag_values[spec.name].present for spec in config_lib.FLAG_SPECS)


def resolve_config(flag_values):
  """The config named by --config (with explicitly given config flags on top), or the one the flags spell out.

  Returns None when neither --config nor any config flag (e.g. from --flagfile) was given.
  """
  from fomm_tf import config as config_lib
  given = [spec.name for spec in config_lib.FLAG_SPECS if flag_values[spec.name].present]
  if flag_values.config:
    explicit = config_lib.config_from_flag_values(flag_values)
    return config_lib.load_config(flag_values.config, **{name: explicit.values[name] for name in given})
  if given:
    return config_lib.config_from_flag_values(flag_values)
  return None


def load_model(cfg, checkpoint):
  """A FommModel for inference with `checkpoint` loaded; without one, random weights are warned about."""
  from absl import logging
  from fomm_tf.checkpoint import loading
  from fomm_tf.models import fomm_model
  model = fomm_model.FommModel(cfg, build_discriminator=False)
  if checkpoint:
    loading.load_weights(model, checkpoint)
  else:
    logging.warning("no --checkpoint: the networks have random weights")
  return model


def load_model_from_flags(flag_values):
  """(config, FommModel for inference) from the config flags and --checkpoint."""
  cfg = resolve_config(flag_values)
  if cfg is None:
    raise ValueError("no model config: pass --flagfile=configs/NAME.flags or --config=NAME")
  return cfg, load_model(cfg, flag_values.checkpoint)
