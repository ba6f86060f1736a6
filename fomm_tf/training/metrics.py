"""Loss metrics accumulated inside the training graph, read by the host only when it writes a summary.

Reading a loss with `.numpy()` every step makes the host wait for the device
each step; instead each step adds its (replica-averaged) losses to running
sums, and the first step at which a loss stops being finite is recorded, so the
loop can report it exactly whenever it next looks.
"""

import numpy as np
import tensorflow as tf


class LossMetrics(tf.Module):
  """Running sums of named losses since the last `read_and_reset`, plus the first non-finite step of each."""

  def __init__(self, names):
    super().__init__(name="loss_metrics")
    self.names = tuple(names)
    count = len(self.names)
    self.sums = tf.Variable(tf.zeros([count], tf.float64), trainable=False, name="sums")
    self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps")
    self.bad_step = tf.Variable(tf.fill([count], tf.constant(-1, tf.int64)), trainable=False, name="bad_step")
    self.bad_value = tf.Variable(tf.zeros([count], tf.float32), trainable=False, name="bad_value")

  def update(self, losses, step):
    """Adds one step's losses (a dict with every name); call in cross-replica context, inside the graph."""
    values = tf.stack([tf.cast(losses[name], tf.float32) for name in self.names])
    finite = tf.math.is_finite(values)
    first_bad = (~finite) & (self.bad_step < 0)
    self.bad_step.assign(tf.where(first_bad, tf.fill([len(self.names)], tf.cast(step, tf.int64)), self.bad_step))
    self.bad_value.assign(tf.where(first_bad, values, self.bad_value))
    self.sums.assign_add(tf.cast(values, tf.float64))
    self.steps.assign_add(1)

  def first_non_finite(self):
    """(name, value, step) of the earliest non-finite loss, or None."""
    steps = self.bad_step.numpy()
    if not np.any(steps >= 0):
      return None
    index = int(np.argmin(np.where(steps >= 0, steps, np.iinfo(np.int64).max)))
    return self.names[index], float(self.bad_value.numpy()[index]), int(steps[index])

  def read_and_reset(self):
    """{name: mean since the last read}; empty when no step ran."""
    count = int(self.steps.numpy())
    if count == 0:
      return {}
    means = self.sums.numpy() / count
    self.sums.assign(tf.zeros_like(self.sums))
    self.steps.assign(0)
    return {name: float(value) for name, value in zip(self.names, means)}
