"""Which tf.distribute strategy ``train fit`` runs under, and the cluster it belongs to.

``--strategy``:

* ``auto`` (default): ``multi_worker`` when ``TF_CONFIG`` names a cluster of 2+ tasks, else
  ``mirrored`` when the machine has 2+ GPUs, else ``default``.
* ``default``: one device (the GPU if there is one, else the CPU).
* ``mirrored``: ``MirroredStrategy`` over every local GPU (without GPUs: every logical CPU
  device; ``--cpu-replicas N`` splits the CPU into N, for testing replica code on a laptop).
* ``multi_worker``: ``MultiWorkerMirroredStrategy``: synchronous all-reduce across the workers
  of ``TF_CONFIG`` (the maintained successor of the paper's asynchronous updates), each worker
  running the same command. ``python -m train launch`` starts such a cluster on one machine.

``TF_CONFIG`` is TensorFlow's own: ``{"cluster": {"worker": ["host:port", ...]} (and
optionally "chief": ["host:port"]), "task": {"type": "worker", "index": i}}``. The chief (the
``chief`` task, else worker 0) alone writes checkpoints, TensorBoard logs, ``train_log.json``
and the progress bar. Everything here is checked before TensorFlow starts its server, so a bad
cluster fails on every worker with a message that names the problem.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from dataclasses import dataclass

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


class ClusterError(ValueError):
    """TF_CONFIG, the cluster or the workers' agreement is wrong; the message says how."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in a ``TF_CONFIG`` cluster.

    tasks: [(type, address)] in TensorFlow's order (chief first, then the workers);
    task_type / task_index: this process (``task`` of TF_CONFIG).
    """
    tasks: tuple
    task_type: str
    task_index: int

    @property
    def num_workers(self) -> int:
        return len(self.tasks)

    @property
    def rank(self) -> int:
        """0 .. num_workers-1, the chief 0 (the order of MultiWorkerMirroredStrategy's
        input pipelines)."""
        return self.tasks.index((self.task_type, self.address))

    @property
    def address(self) -> str:
        same = [a for t, a in self.tasks if t == self.task_type]
        return same[self.task_index]

    @property
    def is_chief(self) -> bool:
        return self.rank == 0


def read_tf_config(text: str | None = None) -> Cluster | None:
    """Parses ``TF_CONFIG`` (default: the environment's) -> a :class:`Cluster`, or None when
    it is unset or empty. Raises :class:`ClusterError` naming the problem."""
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    if not text.strip():
        return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ClusterError(f"TF_CONFIG is not valid JSON ({e.msg} at character {e.pos}): "
                           f"{text[:200]!r}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cluster"), dict):
        raise ClusterError('TF_CONFIG needs a "cluster" object, e.g. {"cluster": {"worker": '
                           '["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
                           '"index": 0}}')
    cluster, task = doc["cluster"], doc.get("task")
    unknown = set(cluster) - {"chief", "worker"}
    if unknown:
        raise ClusterError(f"TF_CONFIG cluster has {sorted(unknown)}: MultiWorkerMirrored"
                           f"Strategy takes only 'chief' and 'worker' tasks (no parameter "
                           f"servers or evaluators)")
    tasks = []
    for kind in ("chief", "worker"):
        addresses = cluster.get(kind, [])
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise ClusterError(f"TF_CONFIG cluster.{kind} must be a list of 'host:port' "
                               f"strings, got {addresses!r}")
        if kind == "chief" and len(addresses) > 1:
            raise ClusterError(f"TF_CONFIG cluster.chief has {len(addresses)} entries; at "
                               f"most one")
        for i, a in enumerate(addresses):
            host, _, port = a.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ClusterError(f"TF_CONFIG cluster.{kind}[{i}] = {a!r} is not 'host:port'")
            tasks.append((kind, a))
    if not tasks:
        raise ClusterError("TF_CONFIG cluster lists no worker")
    if len(set(a for _, a in tasks)) != len(tasks):
        raise ClusterError(f"TF_CONFIG cluster lists an address twice: {[a for _, a in tasks]}")
    if not isinstance(task, dict) or task.get("type") not in ("chief", "worker"):
        raise ClusterError(f'TF_CONFIG needs "task": {{"type": "worker" or "chief", "index": '
                           f'i}} for this process, got {task!r}')
    index = task.get("index", 0)
    count = len(cluster.get(task["type"], []))
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
        raise ClusterError(f"TF_CONFIG task.index is {index!r}, but cluster.{task['type']} "
                           f"has {count} entr{'y' if count == 1 else 'ies'} (0..{count - 1})")
    return Cluster(tuple(tasks), task["type"], index)


def check_port_free(cluster: Cluster) -> None:
    """Raises :class:`ClusterError` if this task's port is already taken on this machine
    (TensorFlow's own message for that is a gRPC abort deep in a traceback)."""
    host, _, port = cluster.address.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", int(port)))
        except OSError as e:
            raise ClusterError(f"TF_CONFIG {cluster.task_type}[{cluster.task_index}] = "
                               f"{cluster.address}: port {port} is in use on this machine "
                               f"({e.strerror}); pick another port") from None


def resolve(name: str, cluster: Cluster | None, num_gpus: int) -> str:
    """The strategy ``name`` means here: one of default | mirrored | multi_worker."""
    if name not in STRATEGIES:
        raise ClusterError(f"unknown strategy {name!r} ({' | '.join(STRATEGIES)})")
    if name == "auto":
        if cluster is not None and cluster.num_workers > 1:
            return "multi_worker"
        return "mirrored" if num_gpus > 1 else "default"
    if name == "multi_worker" and cluster is None:
        raise ClusterError("--strategy multi_worker needs TF_CONFIG (one per worker; see the "
                           "README), or start a local cluster with `python -m train launch "
                           "--workers N ...`")
    return name


def make_strategy(name: str = "auto", cpu_replicas: int = 0):
    """-> (tf.distribute.Strategy, Cluster or None). Call it before any other TensorFlow work:
    MultiWorkerMirroredStrategy must configure collectives at program start-up."""
    cluster = read_tf_config()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    kind = resolve(name, cluster, len(gpus))
    if kind == "multi_worker":
        check_port_free(cluster)
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options), cluster
    if cpu_replicas > 1:
        if gpus:
            raise ClusterError("--cpu-replicas is for CPU-only machines (this one has a GPU)")
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        kind = "mirrored"
    if kind == "mirrored":  # every local GPU; without GPUs, every logical CPU device
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices]), None
    return tf.distribute.get_strategy(), None


def config_digest(config) -> str:
    """sha256 of the resolved config (after the command line's overrides), hex."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_same_config(strategy, digest: str) -> None:
    """All workers compare ``digest`` before training (one all-gather); raises
    :class:`ClusterError` on every worker, listing each one's, if they differ."""
    import tensorflow as tf

    if not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return  # one process: nothing to compare
    mine = tf.constant([int(digest[:15], 16)], tf.int64)  # 60 bits: plenty to tell apart

    @tf.function
    def gather():
        return strategy.gather(strategy.run(lambda: tf.identity(mine)), axis=0)

    seen = [int(v) for v in gather().numpy()]
    if len(set(seen)) > 1:
        listed = ", ".join(f"replica {i}: {v:015x}" for i, v in enumerate(seen))
        raise ClusterError(f"the workers were started with different configs (sha256 prefix "
                           f"of each resolved config: {listed}); start every worker with the "
                           f"same --config, --data and overrides")


def resolve_precision(name: str) -> str:
    """``train.precision`` -> float32 | mixed_float16 (auto: mixed_float16 with a GPU)."""
    if name != "auto":
        return name
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


@contextlib.contextmanager
def precision_policy(precision: str):
    """Keras' global dtype policy ``precision`` while the model is built (its layers keep
    it), the previous policy after (evaluation and export build float32 models)."""
    import tf_keras as keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(
        "mixed_float16" if precision == "mixed_float16" else "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
