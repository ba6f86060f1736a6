"""Regenerates fomm_tf/inference/export_allowlist.py: the op types of exports of every official config.

  python tools/update_export_allowlist.py          # rewrite the file
  python tools/update_export_allowlist.py --check  # only say whether it is up to date (exit 1 if not)

Run it after changing the networks, the exporter, the configs or TensorFlow; see fomm_tf/export/op_inventory.py.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

FLAGS = flags.DEFINE_boolean("check", False, "Only compare, do not write.")
TARGET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fomm_tf", "inference",
                      "export_allowlist.py")


def main(argv):
  del argv
  from fomm_tf.export import op_inventory  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory(prefix="allowlist_") as scratch:
    found, configs, _ = op_inventory.inventory(scratch, report=lambda line: print(line, flush=True))
  text = op_inventory.render_allowlist(found, configs)
  with open(TARGET) as f:
    current = f.read()
  if current == text:
    print(f"{TARGET}: up to date")
    return
  if FLAGS.value:
    print(f"{TARGET}: out of date; run python tools/update_export_allowlist.py")
    sys.exit(1)
  with open(TARGET, "w") as f:
    f.write(text)
  print(f"wrote {TARGET}")


if __name__ == "__main__":
  app.run(main)
