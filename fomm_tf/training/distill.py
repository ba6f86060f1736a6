"""Distillation: a (lite) student learns a teacher's keypoints, motion, occlusion and frames on real driving pairs.

`DistillationModel` takes the place of the `TrainingModel` in the trainer: the
same state (`state.py`, the student's networks and optimizers), the same step
(`step.py`: one summed loss updates the student's keypoint detector and
generator) and the same loop (`loop.py`: checkpoints, resume, summaries,
signals); only the losses and the image grid differ. The teacher runs in
inference mode and is never updated nor checkpointed: it is read from its own
file at every (re)start.

Losses, each a mean absolute difference between student and teacher on the
same (source, driving) pair, the student driven by its own keypoints:
  keypoints, jacobians: of the source and the driving frame;
  deformation, occlusion: the dense motion network's flow and occlusion map;
  pixel: the predicted frame, on the perceptual pyramid's levels;
  perceptual: VGG19 features of the predicted frames (the student config's weights);
  real: pixel + perceptual against the real driving frame instead, times its weight (0: off).
"""

import dataclasses

import tensorflow as tf

from fomm_tf.errors import ConfigError
from fomm_tf.losses import perceptual
from fomm_tf.ops import antialias


@dataclasses.dataclass(frozen=True)
class DistillWeights:
  """Weights of the distillation losses (see the module docstring)."""
  keypoints: float = 10.0
  jacobians: float = 1.0
  deformation: float = 10.0
  occlusion: float = 1.0
  pixel: float = 10.0
  real: float = 0.0

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if not (isinstance(value, (int, float)) and value >= 0 and value != float("inf")):
        raise ConfigError(f"--distill_{field.name} must be a finite number >= 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Teacher:
  """What a distillation learns from: a FommConfig and the checkpoint fomm-tf loads for it (an official .pth.tar,
  a fomm-tf checkpoint or .npz weights)."""
  config: object
  checkpoint: str


def check_pair(teacher_cfg, student_cfg):
  """Raises ConfigError (one line) when the student cannot learn from the teacher: the outputs it imitates differ."""
  pairs = [
      ("num_kp", teacher_cfg.model.num_kp, student_cfg.model.num_kp),
      ("frame_shape", teacher_cfg.model.frame_shape, student_cfg.model.frame_shape),
      ("estimate_jacobian", teacher_cfg.model.estimate_jacobian, student_cfg.model.estimate_jacobian),
      ("gen_estimate_occlusion_map", teacher_cfg.generator.estimate_occlusion_map,
       student_cfg.generator.estimate_occlusion_map),
  ]
  for name, teacher, student in pairs:
    if teacher != student:
      show = lambda v: ",".join(map(str, v)) if isinstance(v, tuple) else str(v).lower()
      raise ConfigError(f"teacher and student differ in --{name}: teacher {show(teacher)} "
                        f"({teacher_cfg.source}), student {show(student)} ({student_cfg.source}); "
                        "a student imitates the teacher's outputs, which need the same value")


def _resize_like(x, reference):
  if x.shape[1:3] == reference.shape[1:3]:
    return x
  return tf.image.resize(x, reference.shape[1:3], method="bilinear")


def _l1(a, b):
  return tf.reduce_mean(tf.abs(a - b))


class DistillationModel:
  """The distillation losses of a batch {'source', 'driving'}: a TrainingModel for the trainer's step and loop.

  Args:
    model: the student FommModel (trained).
    teacher: the teacher FommModel (inference only).
    vgg: VGG19 features for the perceptual terms, or None.
    weights: a DistillWeights.
  """

  use_gan = False

  def __init__(self, model, teacher, vgg=None, weights=DistillWeights()):
    check_pair(teacher.config, model.config)
    self.model = model
    self.teacher = teacher
    self.vgg = vgg
    self.weights = weights
    train = model.config.train
    self.scales = train.perceptual_scales
    self.layer_weights = train.loss_perceptual
    self.use_perceptual = vgg is not None and sum(train.loss_perceptual) != 0
    self.has_jacobian = model.config.model.estimate_jacobian
    self.has_occlusion = model.config.generator.estimate_occlusion_map

  def loss_names(self):
    """The losses a step computes, in a fixed order (weights of 0 drop their term)."""
    w = self.weights
    terms = [("keypoints", w.keypoints), ("jacobians", w.jacobians if self.has_jacobian else 0),
             ("deformation", w.deformation), ("occlusion", w.occlusion if self.has_occlusion else 0),
             ("pixel", w.pixel), ("perceptual", 1.0 if self.use_perceptual else 0), ("real", w.real)]
    return [name for name, weight in terms if weight != 0]

  def sample_transform_params(self, batch_size, seed):
    """No equivariance transform: the teacher's keypoints are the target."""
    del batch_size, seed
    return {}

  def teacher_outputs(self, source, driving):
    """The teacher's keypoints and generator outputs (inference mode, no gradient)."""
    kp_source = self.teacher.kp_detector(source, training=False)
    kp_driving = self.teacher.kp_detector(driving, training=False)
    out = self.teacher.generator(source, kp_source, kp_driving, training=False)
    out.update({"kp_source": kp_source, "kp_driving": kp_driving})
    return tf.nest.map_structure(tf.stop_gradient, out)

  def _frame_terms(self, prediction, target):
    """(L1 over the pyramid levels, perceptual or None) of the student's prediction against a target frame."""
    predicted = antialias.image_pyramid(prediction, self.scales)
    wanted = antialias.image_pyramid(target, self.scales)
    l1 = tf.add_n([_l1(predicted[k], wanted[k]) for k in predicted])
    perceptual_term = (perceptual.perceptual_loss(self.vgg, wanted, predicted, self.scales, self.layer_weights)
                       if self.use_perceptual else None)
    return l1, perceptual_term

  def generator_losses(self, batch, training=True):
    """({loss name: scalar}, the student's outputs plus the teacher's prediction and keypoints)."""
    w = self.weights
    source, driving = batch["source"], batch["driving"]
    teacher = self.teacher_outputs(source, driving)
    kp_source = self.model.kp_detector(source, training=training)
    kp_driving = self.model.kp_detector(driving, training=training)
    generated = self.model.generator(source, kp_source, kp_driving, training=training)
    generated.update({
        "kp_source": kp_source,
        "kp_driving": kp_driving,
        "teacher_prediction": teacher["prediction"],
        "teacher_kp_driving": teacher["kp_driving"]
    })
    names = set(self.loss_names())
    losses = {}
    if "keypoints" in names:
      losses["keypoints"] = w.keypoints * (_l1(kp_source["value"], teacher["kp_source"]["value"]) +
                                           _l1(kp_driving["value"], teacher["kp_driving"]["value"]))
    if "jacobians" in names:
      losses["jacobians"] = w.jacobians * (_l1(kp_source["jacobian"], teacher["kp_source"]["jacobian"]) +
                                           _l1(kp_driving["jacobian"], teacher["kp_driving"]["jacobian"]))
    if "deformation" in names:
      losses["deformation"] = w.deformation * _l1(_resize_like(generated["deformation"], teacher["deformation"]),
                                                  teacher["deformation"])
    if "occlusion" in names:
      losses["occlusion"] = w.occlusion * _l1(_resize_like(generated["occlusion_map"], teacher["occlusion_map"]),
                                              teacher["occlusion_map"])
    if "pixel" in names or "perceptual" in names:
      l1, perceptual_term = self._frame_terms(generated["prediction"], teacher["prediction"])
      if "pixel" in names:
        losses["pixel"] = w.pixel * l1
      if "perceptual" in names:
        losses["perceptual"] = perceptual_term
    if "real" in names:
      l1, perceptual_term = self._frame_terms(generated["prediction"], driving)
      losses["real"] = w.real * (w.pixel * l1 + (perceptual_term if perceptual_term is not None else 0.0))
    return {name: losses[name] for name in self.loss_names()}, generated
