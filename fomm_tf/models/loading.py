"""`load_model`: build the networks from a config and load weights."""

from fomm_tf import config as config_lib
from fomm_tf.models import fomm_model


def load_model(config, checkpoint=None, align_corners=True, build_discriminator=True):
  """Builds a FommModel.

  Args:
    config: a config name ("vox-256"), a flagfile path, or a FommConfig.
    checkpoint: None (random init), an official `.pth.tar` (legacy or zip
      format), or a checkpoint of this project (a tf.train.Checkpoint prefix or
      a directory holding one).
    align_corners: the grid-sampling convention (see README).
  """
  cfg = config_lib.load_config(config, align_corners=align_corners)
  model = fomm_model.FommModel(cfg, build_discriminator=build_discriminator)
  if checkpoint is not None:
    from fomm_tf.checkpoint import loading as checkpoint_loading
    checkpoint_loading.load_weights(model, checkpoint)
  return model
