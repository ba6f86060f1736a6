"""Converts an official FOMM `.pth.tar` into this project's checkpoint format (no torch needed).

  python tools/convert_checkpoint.py --flagfile=configs/vox-256.flags \
      --checkpoint=vox-cpk.pth.tar --output=checkpoints/vox-256/ckpt

Prints a summary (keys and parameter counts per network). The output is a
tf.train.Checkpoint prefix that `fomm_tf.load_model(config, checkpoint=...)`
and `python -m fomm_tf.animate --checkpoint=...` read.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # pylint: disable=g-import-not-at-top

from fomm_tf import cli
from fomm_tf.checkpoint import loading
from fomm_tf.checkpoint import official_mapping
from fomm_tf.config import flagfiles
from fomm_tf.errors import UsageError
from fomm_tf.io import files
from fomm_tf.models import fomm_model


def define_flags(flag_values):
  cli.define_model_flags(flag_values, checkpoint_help="The official .pth.tar (legacy or zip format).")
  flags.DEFINE_string("output", None, "Output checkpoint prefix, e.g. checkpoints/vox/ckpt.", flag_values=flag_values)
  flags.DEFINE_boolean("overwrite", False, "Replace an existing checkpoint at --output.", flag_values=flag_values)


def convert(cfg, checkpoint, output, overwrite=False):
  """Loads `checkpoint` into a model built from `cfg`, writes it to `output`; returns the summary text."""
  if not checkpoint or not output:
    raise UsageError("--checkpoint and --output are required")
  if not loading.is_torch_checkpoint(checkpoint):
    raise UsageError(f"{checkpoint}: not a PyTorch checkpoint (expected an official .pth.tar)")
  if os.path.exists(output + ".index") and not overwrite:
    raise UsageError(f"{output}: a checkpoint already exists there (pass --overwrite to replace it)")
  files.refuse_overwrite([("output", output + ".index")], [("checkpoint", checkpoint)])
  directory = os.path.dirname(os.path.abspath(output))
  if not os.path.isdir(directory):
    raise UsageError(f"{directory}: output directory does not exist")
  model = fomm_model.FommModel(cfg, build_discriminator=True)
  state = loading.load_weights(model, checkpoint)
  entries = official_mapping.model_entries(model)
  lines = [f"converted {checkpoint}"]
  for network, net_entries in entries.items():
    if network not in state:
      lines.append(f"  {network:14s} absent from the checkpoint (left at initial weights)")
      continue
    params = sum(int(v.numpy().size) for v in model.networks()[network].trainable_weights)
    lines.append(f"  {network:14s} {len(state[network]):4d} keys  {params:,} parameters")
  if "epoch" in state:
    lines.append(f"  epoch {state['epoch']}")
  path = loading.save_weights(model, output)
  lines.append(f"wrote {path}")
  return "\n".join(lines)


def run(flag_values):
  cfg = cli.resolve_config(flag_values) or flagfiles.load_config(None)
  print(convert(cfg, cli.checkpoint_flag(flag_values), flag_values.output, flag_values.overwrite))


main = cli.main_function(define_flags, run)

if __name__ == "__main__":
  main()
