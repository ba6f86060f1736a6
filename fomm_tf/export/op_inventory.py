"""Which op types fomm-tf's exports contain: the source of the allowlist that export_checks enforces.

Every official config is exported with its channel counts, frame size and block repeats shrunk (which op types an
export holds depends on the structure of the networks - scale factors, Jacobians, occlusion, padding - never on
their widths or the frame size, which only change tensor shapes, nor on how often a block repeats, which only
changes how many ops there are), for every TFLite quantisation. Configs that
share a structure give the same op set, so each structure is exported once, with the switches that only add ops
(ADDITIVE) on if any of its configs has them on. tools/update_export_allowlist.py
writes the result to fomm_tf/inference/export_allowlist.py; tests/export_allowlist_test.py checks that the
allowlist is exactly that (nothing an export needs is missing, nothing unused is allowed).

The official configs all keep the default align_corners=true; a model exported with --noalign_corners holds the
same op types (checked by hand for the SavedModel and float32 TFLite files of the vox structure), and the exporter
refuses to finish any export with an op outside the list, so a gap shows at export, never at run time.
"""

import os

from fomm_tf.config import flagfiles
from fomm_tf.config import fomm_config
from fomm_tf.export import preflight
from fomm_tf.inference import export_checks
from fomm_tf.inference import export_layout as layout

# How often a block repeats changes how many ops there are, not their types (as long as there is one).
_REPEATS = ("kp_num_blocks", "dm_num_blocks", "gen_num_bottleneck_blocks", "gen_num_down_blocks")
# Widths and the frame size change shapes, not op types; shrinking them keeps each export to seconds.
SHRUNK = {
    "frame_shape": (64, 64, 3),
    "kp_block_expansion": 4,
    "kp_max_features": 16,
    "gen_block_expansion": 4,
    "gen_max_features": 16,
    "dm_block_expansion": 4,
    "dm_max_features": 16
}
# Repeats cut to the fewest that keep every kind of block (the hourglasses at 64 pixels also need <= 3 levels).
FEWEST_REPEATS = {"kp_num_blocks": 2, "dm_num_blocks": 2, "gen_num_bottleneck_blocks": 1}

# One Jacobian map shared by all keypoints (mgif-256) or one per keypoint is a channel count, like a width (checked
# on exports of mgif-256 and mgif-256-lite: their op types are those of vox-256's and vox-256-lite's, less the
# resize of vox's group's output blend).
SHAPE_ONLY = ("kp_single_jacobian_map",)

# Switches that only add ops: an export with one on holds every op type of the same structure with it off (the
# blend moves the source's downsampling from encode_source to generate_from_state and adds a resize, a product and
# a sum), so one export with it on stands for both.
ADDITIVE = ("gen_blend_deformed",)

# SavedModels written through keras.export.ExportArchive (fomm-tf before its exporter saved concrete functions,
# fomm_tf/export/saved_model.py) also hold these in functions that loading runs; they stay allowed, so that those
# exports still load.
EARLIER_SAVED_MODEL_OPS = frozenset({"AssignVariableOp", "VarHandleOp", "VarIsInitializedOp"})


def structure_key(config):
  """The fields of `config`'s networks (fomm_config.NETWORK_SECTIONS) that can change which ops an export holds (all
  but SHRUNK's, SHAPE_ONLY's and ADDITIVE's)."""
  return tuple(
      sorted((name, str(min(value, 1) if name in _REPEATS else value))
             for name, value in config.flat().items()
             if fomm_config.FLAG_FIELDS[name].section in fomm_config.NETWORK_SECTIONS and name not in SHRUNK and
             name not in SHAPE_ONLY and name not in ADDITIVE))


def official_structures():
  """[(config names, shrunk config)], one per distinct structure of the official configs."""
  groups = {}
  for name in flagfiles.known_configs():
    config = flagfiles.load_config(name)
    if not config.model.estimate_jacobian:
      continue  # Not exportable (the exporter refuses it), so it contributes no ops.
    repeats = {k: min(v, config.flat()[k]) if config.flat()[k] > 0 else 0 for k, v in FEWEST_REPEATS.items()}
    shrunk = config.replace(
        **{
            k: v for k, v in SHRUNK.items() if k != "frame_shape" or config.model.frame_shape[2] == v[2]
        }, **repeats)
    names, _, switches = groups.setdefault(structure_key(config), ([], shrunk, set()))
    names.append(name)
    switches.update(switch for switch in ADDITIVE if config.flat()[switch])
  return [
      (names, config.replace(**{switch: True for switch in switches})) for names, config, switches in groups.values()
  ]


def export_ops(export_dir):
  """{'saved_model', 'saved_model_saver', 'tflite'}: sets of the op types of one export directory's files."""
  found = {"saved_model": set(), "saved_model_saver": set(), "tflite": set()}
  saved_model_dir = os.path.join(export_dir, layout.SAVED_MODEL)
  if os.path.isdir(saved_model_dir):
    ops = export_checks.saved_model_ops(export_checks.read_saved_model_proto(saved_model_dir))
    found["saved_model"] |= ops["ops"]
    found["saved_model_saver"] |= ops["saver_ops"]
  for root, _, names in os.walk(os.path.join(export_dir, layout.TFLITE)):
    for name in names:
      if name.endswith(".tflite"):
        found["tflite"] |= set(export_checks.tflite_ops(os.path.join(root, name)))
  found["saved_model_saver"] -= found["saved_model"]
  return found


def inventory(scratch, report=print):
  """(op sets as export_ops returns them, with EARLIER_SAVED_MODEL_OPS, config names, [(config names, shrunk
  config, export directory)]) of exports of every official structure, written into the folder `scratch`
  (SavedModel and every TFLite quantisation, the weights seeded with 0; the exporter's own allowlist check is off:
  this makes the list).

  ONNX files are not exported: the ONNX check allows the standard domain, not a list of ops.
  """
  import keras  # pylint: disable=import-outside-toplevel
  from fomm_tf.export import evaluation  # pylint: disable=import-outside-toplevel
  from fomm_tf.export import exporter  # pylint: disable=import-outside-toplevel
  from fomm_tf.checkpoint import loading  # pylint: disable=import-outside-toplevel
  found = {"saved_model": set(), "saved_model_saver": set(), "tflite": set()}
  configs, exports = [], []
  for i, (names, config) in enumerate(official_structures()):
    report(f"exporting the structure of {', '.join(names)}")
    keras.utils.set_random_seed(0)
    model = loading.load_model(config)
    frames = evaluation.synthetic_frames(model.frame_shape, count=4)
    directory = os.path.join(scratch, str(i))
    exporter.export_model(model,
                          directory,
                          formats=("saved_model", "tflite"),
                          quantizations=preflight.QUANTIZATIONS,
                          representative_frames=frames,
                          progress=lambda message: None,
                          check_allowlist=False)
    for key, ops in export_ops(directory).items():
      found[key] |= ops
    configs += names
    exports.append((names, config, directory))
  found["saved_model"] |= EARLIER_SAVED_MODEL_OPS
  found["saved_model_saver"] -= found["saved_model"]
  return found, configs, exports


def render_allowlist(found, configs):
  """The text of fomm_tf/inference/export_allowlist.py for the op sets `found` (see export_ops)."""

  def constant(name, values, comment):
    body = "".join(f"    {value!r},\n" for value in sorted(values))
    return f"# {comment}\n{name} = frozenset({{\n{body}}})\n"

  return ('"""The op types fomm-tf\'s exports contain; export_checks refuses any other.\n\n'
          "Generated by tools/update_export_allowlist.py from exports of the official configs, shrunk, with every\n"
          "TFLite quantisation; do not edit by hand\n"
          '(tests/export_allowlist_test.py checks that it is exactly what those exports hold).\n\n'
          f"Configs: {', '.join(sorted(configs))}.\n" + '"""\n\n' +
          constant("SAVED_MODEL_OPS", found["saved_model"], "Allowed anywhere in saved_model.pb.") + "\n" + constant(
              "SAVED_MODEL_SAVER_OPS", found["saved_model_saver"],
              "Allowed only in functions that nothing but the SavedModel's saver_def reaches (never run by "
              "tf.saved_model.load).") + "\n" +
          constant("TFLITE_OPS", found["tflite"], "Builtin TFLite ops; no custom op is ever allowed."))
