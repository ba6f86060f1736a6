"""`python -m fomm_tf.train` (also `fomm-train`): train FOMM, or distill a teacher into a (lite) student.

  python -m fomm_tf.train --flagfile=configs/vox-256.flags --dataset_root=DIR --model_dir=DIR
  python -m fomm_tf.train --flagfile=configs/vox-256-lite.flags --teacher_config=vox-256 \
      --teacher_checkpoint=vox-cpk.pth.tar --dataset_root=DIR --model_dir=DIR   # docs/lite.md

Runs under MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy
over all local GPUs (or --num_cpu_replicas logical CPUs), one device otherwise.
Resumes from the latest checkpoint in --model_dir; SIGTERM/SIGINT save a
checkpoint after the current step and exit with 128 + the signal number.
"""

import dataclasses

from absl import flags
from absl import logging

from fomm_tf import cli
from fomm_tf.config import flagfiles
from fomm_tf.errors import UsageError


def define_flags(flag_values):
  from fomm_tf.training import distill  # pylint: disable=import-outside-toplevel
  from fomm_tf.training import options as options_lib  # pylint: disable=import-outside-toplevel
  cli.define_model_flags(flag_values, checkpoint_help=None)
  kw = {"flag_values": flag_values}
  flags.DEFINE_string("dataset_root", None, "Dataset root (train/ and test/ subfolders, or one folder of videos).",
                      **kw)
  flags.DEFINE_string("model_dir", None, "Checkpoints and TensorBoard logs; an existing checkpoint resumes.", **kw)
  flags.DEFINE_integer("num_cpu_replicas", 0, "Mirror over this many logical CPU devices (testing).", **kw)
  flagfiles.define_section_flags(options_lib.RunOptions, flag_values)
  # Distillation (docs/lite.md): the config flags describe the student, these the teacher and the losses.
  flags.DEFINE_string(
      "teacher_checkpoint", None,
      "Distill: the teacher's weights (an official .pth.tar, a fomm-tf checkpoint or .npz); the "
      "model trained is the student of the config flags, e.g. --flagfile=configs/vox-256-lite.flags.", **kw)
  flags.DEFINE_string("teacher_config", None, "Distill: the teacher's config name or flagfile (e.g. vox-256).", **kw)
  flags.DEFINE_boolean("init_from_teacher", False,
                       "Distill: start the student from the teacher's weights where path and shape match.", **kw)
  for name, help_text in (("keypoints", "keypoint values (source and driving)"), ("jacobians", "Jacobians"),
                          ("deformation", "dense motion flow"), ("occlusion", "occlusion map"),
                          ("pixel", "L1 of the predicted frame on the perceptual pyramid (the perceptual term "
                           "uses the student config's --loss_perceptual)"),
                          ("real", "pixel + perceptual terms against the real driving frame too (0: off)")):
    default = getattr(distill.DistillWeights, name)
    flags.DEFINE_float(f"distill_{name}", default, f"Distill: weight of the student-teacher {help_text}.", **kw)


def _distillation(flag_values, cfg):
  """(distill.Teacher, DistillWeights) from the distillation flags, or (None, None) to train."""
  from fomm_tf.training import distill  # pylint: disable=import-outside-toplevel
  names = ["teacher_config", "init_from_teacher"
          ] + [f"distill_{f.name}" for f in dataclasses.fields(distill.DistillWeights)]
  if not flag_values.teacher_checkpoint:
    given = [name for name in names if flag_values[name].present]
    if given:
      raise UsageError(f"--{given[0]} needs --teacher_checkpoint (the teacher to distill from)")
    return None, None
  if not flag_values.teacher_config:
    raise UsageError("--teacher_checkpoint needs --teacher_config (the teacher's config name or flagfile, "
                     "e.g. vox-256)")
  teacher_cfg = flagfiles.load_config(flag_values.teacher_config)
  distill.check_pair(teacher_cfg, cfg)
  weights = distill.DistillWeights(
      **{f.name: flag_values[f"distill_{f.name}"].value for f in dataclasses.fields(distill.DistillWeights)})
  return distill.Teacher(teacher_cfg, flag_values.teacher_checkpoint), weights


def run(flag_values):
  from fomm_tf.training import loop  # pylint: disable=import-outside-toplevel
  from fomm_tf.training import options as options_lib  # pylint: disable=import-outside-toplevel
  from fomm_tf.training import strategy as strategy_lib  # pylint: disable=import-outside-toplevel
  for name in ("dataset_root", "model_dir"):
    if not flag_values[name].value:
      raise UsageError(f"--{name} is required")
  if flag_values.num_cpu_replicas < 0:
    raise UsageError(f"--num_cpu_replicas must be >= 0, got {flag_values.num_cpu_replicas}")
  options = flagfiles.section_from_flags(options_lib.RunOptions, flag_values)
  cfg = cli.resolve_config(flag_values) or flagfiles.load_config(None)
  teacher, weights = _distillation(flag_values, cfg)
  strategy = strategy_lib.make_strategy(flag_values.num_cpu_replicas)
  trainer = loop.Trainer(cfg,
                         flag_values.dataset_root,
                         flag_values.model_dir,
                         options=options,
                         strategy=strategy,
                         teacher=teacher,
                         distill_weights=weights,
                         init_from_teacher=flag_values.init_from_teacher if teacher is not None else False)
  logging.info("training %d steps (%d per epoch) on %d replica(s), global batch %d", trainer.max_steps,
               trainer.steps_per_epoch, trainer.num_replicas, trainer.batch_size)
  losses = trainer.train()
  print(f"done at step {int(trainer.state.step.numpy())}: " + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
  print(f"checkpoint: {trainer.checkpoints.latest}")
  return trainer


# The trainer saves a checkpoint on SIGTERM/SIGINT itself (after the current step).
main = cli.main_function(define_flags, run, handle_signals=False)
