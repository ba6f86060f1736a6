"""Choosing the tf.distribute strategy for training."""

import json
import os

import tensorflow as tf
from absl import logging

from fomm_tf.errors import UsageError


def make_strategy(num_cpu_replicas=0):
  """MultiWorkerMirrored when TF_CONFIG is set; Mirrored over all local GPUs, or over
  `num_cpu_replicas` logical CPU devices (for testing); the default strategy otherwise."""
  if os.environ.get("TF_CONFIG"):
    try:
      cluster = json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as e:
      raise UsageError(f"TF_CONFIG is not valid JSON: {e}") from None
    if num_cpu_replicas > 1:
      _split_cpu(num_cpu_replicas)
    logging.info("MultiWorkerMirroredStrategy, task %s", cluster.get("task"))
    return tf.distribute.MultiWorkerMirroredStrategy()
  gpus = tf.config.list_physical_devices("GPU")
  if len(gpus) > 1:
    return tf.distribute.MirroredStrategy()
  if num_cpu_replicas > 1:
    devices = _split_cpu(num_cpu_replicas)
    # Ring all-reduce is what NCCL-less CPU replicas can use.
    return tf.distribute.MirroredStrategy(devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
  if len(gpus) == 1:
    return tf.distribute.OneDeviceStrategy("/gpu:0")
  return tf.distribute.get_strategy()


def _split_cpu(count):
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
  except RuntimeError as e:
    raise RuntimeError(f"--num_cpu_replicas={count} must be set before TensorFlow initialises its devices: {e}") \
        from None
  return [f"/cpu:{i}" for i in range(count)]


def is_chief(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0 and
                                           "chief" not in resolver.cluster_spec().as_dict())


def worker_id(strategy):
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return 0
  return int(resolver.task_id)
