"""TrainState: everything a training run checkpoints (networks, optimizers, loss scales, step, epoch).

Built under the run's tf.distribute strategy. Mixed precision is an argument
here (the networks and VGG get the dtype policy), never Keras' global policy.
"""

import keras
import tensorflow as tf
from absl import logging

from fomm_tf.checkpoint import loading as checkpoint_loading
from fomm_tf.losses import vgg19 as vgg19_lib
from fomm_tf.models import fomm_model
from fomm_tf.training import loss_scale as loss_scale_lib


@keras.saving.register_keras_serializable(package="fomm_tf")
class FusedAdam(keras.optimizers.Adam):
  """Keras' Adam (the same variables and checkpoints), each variable updated by one fused kernel.

  Keras writes Adam's update as about ten element-wise ops per variable; TensorFlow's ResourceApplyAdam does the
  same arithmetic (`m += (g - m)(1 - b1)`, `v += (g^2 - v)(1 - b2)`, `w -= lr sqrt(1 - b2^t) / (1 - b1^t) m /
  (sqrt(v) + eps)`) in one pass, and traces faster. tools/benchmark_train.py --adam=fused,keras on the 2-core AVX2
  CPU (batch 2): the first step (its trace) 27.6 vs 29.7 s for vox-256, 10.1 vs 12.0 synthetic-128, 10.3 vs 11.6
  the tiny test config; later steps the same within the run's noise (13.35 vs 13.34 s, 0.40 vs 0.38, 0.28 vs 0.29).
  One difference besides the order of roundings: the kernel computes 1 - b2 in float32 (0.00099998713 where Keras
  and PyTorch use 0.001), so v is 1.3e-5 smaller, relatively, and each step 6.4e-6 larger; far below what float32
  gradients differ by.
  """

  def update_step(self, gradient, variable, learning_rate):
    index = self._get_variable_index(variable)
    dtype = variable.dtype
    step = tf.cast(self.iterations + 1, dtype)
    beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
    # Under a tf.distribute strategy this runs once per replica's copy (Strategy.update), where a mirrored slot's
    # handle is that replica's.
    tf.raw_ops.ResourceApplyAdam(var=_handle(variable),
                                 m=_handle(self._momentums[index]),
                                 v=_handle(self._velocities[index]),
                                 beta1_power=tf.pow(beta_1, step),
                                 beta2_power=tf.pow(beta_2, step),
                                 lr=tf.cast(learning_rate, dtype),
                                 beta1=beta_1,
                                 beta2=beta_2,
                                 epsilon=tf.cast(self.epsilon, dtype),
                                 grad=tf.cast(gradient, dtype))


def _handle(variable):
  return (variable.value if isinstance(variable, keras.Variable) else variable).handle


# Official: torch Adam with betas (0.5, 0.999) and eps 1e-8.
ADAM = dict(beta_1=0.5, beta_2=0.999, epsilon=1e-8)


def adam(learning_rate):
  return FusedAdam(learning_rate=learning_rate, **ADAM)


class TrainState:
  """The checkpointed state of one training run.

  Attributes:
    model: the FommModel (with discriminator, unless `build_discriminator` is False: a distillation student).
    vgg: the frozen VGG19 features, or None without perceptual loss.
    optimizers: {"kp_detector", "generator"[, "discriminator"]} -> Adam.
    loss_scales: {"generator", "discriminator"} -> the loss scale of that update (float16 only; else none).
    step, epoch: int64 variables.
    checkpoint: the tf.train.Checkpoint of all of the above.
  """

  def __init__(self,
               cfg,
               strategy,
               mixed_precision=None,
               vgg19_weights="imagenet",
               seed=0,
               init_checkpoint=None,
               init_config=None,
               build_discriminator=True):
    self.cfg = cfg
    self.strategy = strategy
    self.mixed_precision = mixed_precision
    dtype = fomm_model.dtype_policy(mixed_precision)
    # The initial weights follow the seed too, so a run is reproducible end to end.
    keras.utils.set_random_seed(seed)
    train = cfg.train
    with strategy.scope():
      self.model = fomm_model.FommModel(cfg, build_discriminator=build_discriminator, dtype=dtype)
      if init_config:
        # Another config's weights: only the variables whose path and shape match are taken.
        start = checkpoint_loading.load_model(init_config, init_checkpoint)
        copied = checkpoint_loading.copy_matching_weights(start, self.model)
        logging.info("%d of %d variables start from %s", copied, len(self.model.inference_variables()), init_checkpoint)
      elif init_checkpoint:
        checkpoint_loading.load_weights(self.model, init_checkpoint)
        logging.info("every variable starts from %s", init_checkpoint)
      self.vgg = (vgg19_lib.make_vgg19_features(vgg19_weights, dtype=dtype)
                  if sum(train.loss_perceptual) != 0 else None)
      rates = {
          "kp_detector": train.lr_kp_detector,
          "generator": train.lr_generator,
          "discriminator": train.lr_discriminator
      }
      self.optimizers = {name: adam(rates[name]) for name in self.model.networks()}
      # Keras 3 optimizers must be built inside the scope before a custom loop's first step.
      for name, optimizer in self.optimizers.items():
        optimizer.build(self.variables(name))
      float16 = mixed_precision == "float16"
      self.loss_scales = {
          name: loss_scale_lib.DynamicLossScale(name=f"{name}_loss_scale") if float16 else loss_scale_lib.NoLossScale()
          for name in ("generator", "discriminator")
      }
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
      self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    bags = {name: checkpoint_loading.VariableBag(net) for name, net in self.model.networks().items()}
    opt_bags = {
        "optimizer_" + name: checkpoint_loading.VariableBag.from_optimizer(opt) for name, opt in self.optimizers.items()
    }
    scales = {
        f"{name}_loss_scale": scale
        for name, scale in self.loss_scales.items()
        if isinstance(scale, loss_scale_lib.DynamicLossScale)
    }
    self.checkpoint = tf.train.Checkpoint(step=self.step, epoch=self.epoch, **bags, **opt_bags, **scales)
    self.base_lr = {name: rates[name] for name in self.optimizers}

  def variables(self, name):
    return list(self.model.networks()[name].trainable_variables)

  def learning_rates(self, epoch):
    """MultiStepLR: x0.1 at each milestone epoch passed."""
    drops = sum(1 for m in self.cfg.train.epoch_milestones if epoch >= m)
    return {name: lr * (0.1**drops) for name, lr in self.base_lr.items()}

  def set_learning_rates(self, epoch):
    for name, lr in self.learning_rates(epoch).items():
      self.optimizers[name].learning_rate = lr

  def non_finite_weight(self):
    """The path of a keypoint-detector or generator variable that is not finite, or None."""
    for variable in self.model.kp_detector.weights + self.model.generator.weights:
      if not bool(tf.reduce_all(tf.math.is_finite(variable))):
        return variable.path
    return None
