"""A training run's checkpoints: written whole or not at all, rotated, and resumed from the newest complete one.

A checkpoint is written under a temporary name and only then entered into the
index, so `kill -9` loses at most the steps since the last one; a write that
fails (a full disk) removes what it began and leaves the earlier checkpoints and
the index as they were. A damaged newest checkpoint is an error naming it,
never silently skipped for an older one.
"""

import glob
import os
import shutil

import tensorflow as tf
from absl import logging

from fomm_tf import errors
from fomm_tf.checkpoint import loading as checkpoint_loading
from fomm_tf.errors import TrainingError
from fomm_tf.io import files

PREFIX = "ckpt"


class Checkpoints:
  """The checkpoints of `checkpoint` (a tf.train.Checkpoint) in `model_dir`.

  Args:
    checkpoint: what is saved and restored.
    model_dir: the run's folder (where the chief writes; other workers write beside it and delete theirs).
    keep: how many of the latest checkpoints survive (0: all).
    chief: whether this worker's checkpoints are the run's.
    worker_id: this worker's id (names its private folder when it is not the chief).
  """

  def __init__(self, checkpoint, model_dir, keep, chief=True, worker_id=0):
    self.model_dir = model_dir
    self.chief = chief
    directory = model_dir if chief else os.path.join(model_dir, f".worker-{worker_id}")
    try:
      os.makedirs(directory, exist_ok=True)
    except OSError as error:
      raise errors.os_error(TrainingError, directory, error, "cannot create the model directory") from None
    self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep or None, checkpoint_name=PREFIX)
    self._checkpoint = checkpoint

  @property
  def latest(self):
    return self.manager.latest_checkpoint

  def restore(self):
    """Restores the newest complete checkpoint of model_dir; its path, or None when there is none."""
    try:
      path = tf.train.latest_checkpoint(self.model_dir)
    except (tf.errors.OpError, ValueError) as error:
      raise TrainingError(f"{self.model_dir}: the checkpoint index file is damaged ({errors.one_line(error)}); "
                          "fix or remove it to start over") from None
    if path is None:
      return None
    try:
      checkpoint_loading.read_tf_checkpoint(self._checkpoint, path, expect_partial=False)
    except errors.CheckpointError as error:
      raise TrainingError(f"cannot resume from {path}: {error}; it is damaged or from another config "
                          "(move it away to resume from an earlier checkpoint)") from None
    logging.info("resumed from %s", path)
    return path

  def save(self, step):
    """Writes the checkpoint of `step`; on failure removes what this write began (TrainingError)."""
    try:
      path = self.manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as error:
      # Whatever this save began goes; the checkpoints before it and the index are untouched.
      for partial in glob.glob(os.path.join(self.manager.directory, f"{PREFIX}-{step}.*")) + glob.glob(
          os.path.join(self.manager.directory, f"{PREFIX}-{step}_temp*")):
        files.remove_quietly(partial)
      reason = getattr(error, "message", None) or errors.one_line(error)
      raise TrainingError(f"{self.manager.directory}: cannot write the checkpoint of step {step} "
                          f"({errors.one_line(reason)}); last complete checkpoint: {self.latest or 'none'}") from None
    if not self.chief:
      shutil.rmtree(self.manager.directory, ignore_errors=True)
    return path
