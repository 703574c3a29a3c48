"""Which tf.distribute strategy trains (--strategy), and the multi-worker roles read from TF_CONFIG."""

from __future__ import annotations

import json
import logging
import os

import keras
import tensorflow as tf

log = logging.getLogger(__name__)
CHOICES = ("auto", "one", "gpus", "multi-worker")


def tf_config() -> dict:
    """TF_CONFIG (what Vertex AI, Kubeflow's TFJob and tf.distribute read), or {}."""
    try:
        return json.loads(os.environ.get("TF_CONFIG") or "{}")
    except ValueError as exc:
        raise SystemExit(f"TF_CONFIG is not valid JSON: {exc}") from exc


def cluster_workers(config: dict | None = None) -> int:
    """Machines TF_CONFIG names (chief + workers); 0 without a cluster."""
    cluster = (config if config is not None else tf_config()).get("cluster") or {}
    return sum(len(cluster.get(kind) or []) for kind in ("chief", "worker"))


def is_chief(config: dict | None = None) -> bool:
    """The task that writes checkpoints and publishes: 'chief', or worker 0 when the cluster has no chief."""
    config = config if config is not None else tf_config()
    task = config.get("task") or {}
    if not config.get("cluster"):
        return True
    if "chief" in config["cluster"]:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def resolve(choice: str) -> str:
    """auto: multi-worker when TF_CONFIG names several machines, else all GPUs of this box, else one CPU."""
    if choice != "auto":
        return choice
    if cluster_workers() > 1:
        return "multi-worker"
    return "gpus" if tf.config.list_physical_devices("GPU") else "one"


def strategy_for(name: str) -> tf.distribute.Strategy:
    """The strategy object; GPUs train in mixed float16."""
    if name == "multi-worker":
        if cluster_workers() < 1:
            raise SystemExit("--strategy multi-worker needs TF_CONFIG naming the cluster and this task")
        # RING collectives over gRPC: works on CPUs (tests, Kubernetes) and GPUs alike.
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        log.info("multi-worker training: %d replicas, this task is %s", strategy.num_replicas_in_sync,
                 "the chief" if is_chief() else "a worker")
        return strategy
    gpus = tf.config.list_physical_devices("GPU")
    if name == "gpus" and gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
        log.info("training on %d GPU(s) with mixed precision", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def agree_on_epoch(strategy: tf.distribute.Strategy, first_epoch: int) -> None:
    """Every worker must start at the same epoch (a worker that cannot see the run folder would not)."""
    # ReduceOp has no MIN/MAX; all values are equal iff n * sum(v^2) == sum(v)^2 (Cauchy-Schwarz).
    value = tf.constant([first_epoch, first_epoch ** 2], tf.int64)
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(value)), axis=None)
    n, (s1, s2) = strategy.num_replicas_in_sync, (int(v) for v in total.numpy())
    if n * s2 != s1 * s1:
        raise SystemExit(f"this worker would resume at epoch {first_epoch}, others elsewhere: with --resume "
                         "every worker needs the chief's run folder (put --model-store on storage they all mount)")
