"""The Ray engine: where stages 3 to 5 (``scan.stages``) run on a Ray cluster (``photobatch scan
--engine ray``).

What runs where. The driver (the machine running ``photobatch scan``) runs the other stages: it
walks the folders, decides what changed, holds the lock, writes the sidecars and is the index's one
writer; it personalizes the results (the personal head is small and belongs to its index). The
cluster does the rest: CPU tasks hash the files and read their EXIF, the driver keeps back the
contents it has already analysed (a moved photo never reaches the models), CPU tasks decode the
others, and model actors (one per GPU, else one per node; each loads the models once) caption them
and suggest hashtags. Batches stream back in order and are committed as they arrive, so a scan
stopped part way keeps what was committed and the next one resumes, as with the local engine.

Faults: tasks are retried by Ray, and a model actor whose process dies is restarted and its
pending batches run again; the driver receives each batch once, so no photo is lost or committed
twice. Every node must see the photos at the same path (shared storage mounted alike); a photo the
driver sees and a node cannot read is recorded as an error naming the node.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Any, BinaryIO

from photobatch.core.config import Config, host_port_problem, quote
from photobatch.core.errors import MissingExtra
from photobatch.core.records import Analysis, FoundFile, PhotoMetadata
from photobatch.scan.stages import Batch, Item, attach, decode, identify
from photobatch.scan.summary import ScanError

if TYPE_CHECKING:
    import numpy as np

    from photobatch.models.stack import Analyzer

# Seconds to wait for a cluster's address to accept a connection before giving up (ray.init itself
# retries an unreachable address for minutes, logging all the while).
CONNECT_TIMEOUT_S = 5.0


# -- on the cluster -------------------------------------------------------------------------------


def node_name() -> str:
    """This node, as Ray names it (its IP address), for messages about what it could not read."""
    import ray

    return ray.util.get_node_ip_address()


def identify_remote(
    found: list[FoundFile],
) -> list[tuple[str | None, PhotoMetadata | None, str | None]]:
    """Hash and EXIF for a chunk of files (a CPU task): (sha256, metadata, error) for each."""
    out = []
    for f in found:
        item = Item(f, is_new=False)
        identify(item)
        if item.error is not None and not os.path.lexists(f.path):
            item.error = not_on_node(f)
        out.append((item.sha256, item.metadata, item.error))
    return out


def decode_remote(found: list[FoundFile]) -> tuple[np.ndarray, list[str | None]]:
    """Decode a chunk for the encoder (a CPU task): the decoded images stacked, and an error (or
    None) for each file; the array holds the images of the files without one, in order."""
    import numpy as np

    images, errors = [], []
    for f in found:
        item = Item(f, is_new=False)
        decode(item)
        if item.error is not None and not os.path.lexists(f.path):
            item.error = not_on_node(f)
        if item.image is not None:
            images.append(item.image.numpy())
        errors.append(item.error)
    stacked = np.stack(images) if images else np.zeros((0, 3, 1, 1), dtype=np.float32)
    return stacked, errors


def not_on_node(f: FoundFile) -> str:
    return (
        f"{f.path}: not found on Ray node {node_name()}: every node must see the photos at the "
        "same path (mount the shared storage there as on this machine)"
    )


class ModelActor:
    """One process's loaded models on the cluster: images in, unpersonalized results out."""

    def __init__(self, config: Config, device: str) -> None:
        from photobatch.models.stack import model_set

        self.analyzer = model_set(config, device)

    def ready(self) -> tuple[str, str]:
        """Load the models; return their versions and this node's name."""
        self.analyzer.load()
        return self.analyzer.models, node_name()

    def describe(
        self, hashes: list[str], images: np.ndarray, errors: list[str | None]
    ) -> list[Analysis]:
        """Results for the decoded images: those of ``hashes`` whose decode ``errors`` is None."""
        import torch

        decoded = [h for h, error in zip(hashes, errors, strict=True) if error is None]
        if not decoded:
            return []
        # Ray hands the array over read-only from its object store; torch wants its own copy.
        return self.analyzer.describe(decoded, list(torch.from_numpy(images.copy())))


# -- on the driver --------------------------------------------------------------------------------


class RayEngine:
    """Runs stages 3 to 5 on a Ray cluster, with enough batches in flight to keep every CPU and
    model actor busy while the driver commits."""

    def __init__(self, config: Config, analyzer: Analyzer, device: str) -> None:
        self.config = config
        self.analyzer = analyzer
        self.ray = import_ray()
        self._started = connect(self.ray, config.ray.address)
        try:
            self._start_actors(device)
        except BaseException:
            self.close()
            raise

    def _start_actors(self, device: str) -> None:
        ray = self.ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        self.identify_ahead = 2 * max(1, int(resources.get("CPU", 1)))
        count = self.config.ray.actors or gpus or len([n for n in ray.nodes() if n["Alive"]])
        self.batch_size = self.config.gpu_batch_size if gpus else self.config.batch_size
        # Actors reserve no CPU: on a node with one or two CPUs a reserved one would leave the
        # decode tasks none, or one (the local engine's decode threads and the encoder share the
        # cores the same way).
        actor = ray.remote(ModelActor).options(
            num_cpus=0,
            num_gpus=1 if gpus else 0,
            max_restarts=-1,
            max_task_retries=-1,
            scheduling_strategy="SPREAD",
        )
        self.actors = [actor.remote(self.config, device) for _ in range(max(1, count))]
        self._identify = ray.remote(num_cpus=1)(identify_remote)
        self._decode = ray.remote(num_cpus=1, num_returns=2)(decode_remote)
        self._readiness = [a.ready.remote() for a in self.actors]  # loads while the CPUs hash
        self._checked = False
        self._next_actor = 0

    def _check_actors(self) -> None:
        """Fail before the first commit when a node runs other model versions than this one:
        their results would be stored as current and never redone."""
        if self._checked:
            return
        here = self.analyzer.models
        for models, node in self._get(self._readiness):
            if models != here:
                raise ScanError(
                    f"Ray node {node} runs other model versions ({models}) than this machine "
                    f"({here}): install the same photobatch release and models on every node"
                )
        self._checked = True

    def running(self) -> AbstractContextManager[object]:
        """Nothing to hold for one pass: the actors live as long as the engine."""
        return nullcontext()

    def batches(self, todo: list[Item]) -> Iterator[list[Item]]:
        rest = iter(todo)
        return iter(lambda: list(islice(rest, self.batch_size)), [])

    def identify_batch(self, items: list[Item]) -> Callable[[], None]:
        """Hash a batch and read its EXIF in a CPU task."""
        ref = self._identify.remote([i.found for i in items])

        def identified() -> None:
            for item, (sha, metadata, error) in zip(items, self._get(ref), strict=True):
                item.sha256, item.metadata, item.error = sha, metadata, error

        return identified

    def analyse_batch(self, items: list[Item], picked: list[Item]) -> Callable[[], Batch]:
        """Decode ``picked`` in a CPU task and hand the images to the next model actor (they go
        from the one to the other without the driver)."""
        if not picked:  # moved or copied photos only: nothing for the cluster
            return lambda: Batch(items, [])
        images, errors = self._decode.remote([i.found for i in picked])
        actor = self.actors[self._next_actor % len(self.actors)]
        self._next_actor += 1
        analyses = actor.describe.remote([i.sha256 for i in picked], images, errors)
        return partial(self._collect, items, picked, errors, analyses)

    def analyse_ahead(self) -> int:
        """Two batches in flight per model actor."""
        return 2 * len(self.actors) - 1

    def _collect(self, items: list[Item], picked: list[Item], errors: Any, analyses: Any) -> Batch:
        """Wait for a batch's decode errors and results (``ObjectRef``s)."""
        self._check_actors()
        results = self._get(analyses)
        for item, error in zip(picked, self._get(errors), strict=True):
            item.error = error
        attach([item for item in picked if item.error is None], results)
        return Batch(items, picked)

    def _get(self, ref: Any) -> Any:
        """``ray.get``, with a failure inside the models turned into the scan's one-line error."""
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            raise ScanError(f"on the Ray cluster: {cause}") from exc

    def close(self) -> None:
        """Disconnect from (or stop) the Ray instance this engine started, which ends its
        actors; in a Ray this engine joined, stop them."""
        if self._started and self.ray.is_initialized():
            # Not killed one by one first: an actor killed with work in flight (a scan
            # stopped by SIGTERM) has Ray print a line per task on stdout, into cron's mail;
            # and its C++ core's complaints about tasks cut short stay out of stderr.
            with own_sigterm(), core_log():
                self.ray.shutdown()
        else:
            for actor in getattr(self, "actors", []):
                self.ray.kill(actor)
        self.actors = []


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingExtra("ray", "ray") from exc
    return ray


def connect(ray: Any, address: str | None) -> bool:
    """Join the cluster at ``address`` (None: RAY_ADDRESS, else a new instance on this machine);
    True when this call started the connection. Ray's own logs stay out of the scan's output."""
    if ray.is_initialized():
        return False
    # Ray's own default would join whichever cluster `ray start` last ran on this machine: a scan
    # joins one only when told to (an address, "auto" or RAY_ADDRESS).
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    if address not in ("auto", "local"):
        reachable(address)
    with core_log() as log, own_sigterm():
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,  # workers' output stays in Ray's session logs
                logging_level=logging.ERROR,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            log.seek(0)
            if b"InvalidAuthToken" in log.read():
                raise ScanError(
                    f"cannot join the Ray cluster at {address}: it wants its token: set "
                    "RAY_AUTH_MODE=token, and RAY_AUTH_TOKEN to what 'ray get-auth-token' prints "
                    "on its head node"
                ) from exc
            where = (
                "start Ray on this machine"
                if address == "local"
                else f"join the Ray cluster at {address}"
            )
            raise ScanError(f"cannot {where}: {exc}") from exc
    return True


@contextmanager
def own_sigterm() -> Iterator[None]:
    """Keep the process's own SIGTERM handler across ``ray.init``, which replaces it twice: in
    Python (an exit without cleanup) and in its C++ core (a stack dump on stderr, into cron's
    mail), and across ``ray.shutdown``, which resets it. Reinstalling it removes Ray's, so
    SIGTERM ends the scan as the command line says."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, handler)


@contextmanager
def core_log() -> Iterator[BinaryIO]:
    """Ray's C++ core writes to file descriptor 2 while it connects, a warning a second for as
    long as a cluster refuses it, and while it shuts down with tasks cut short; keep that out of
    the scan's output (a cron job's mail), and hand it over for the one-line error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield log
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def reachable(address: str) -> None:
    """Fail in seconds, with one line, when nothing listens at a cluster's host:port."""
    if problem := host_port_problem(address):  # RAY_ADDRESS: the config's was checked already
        raise ScanError(f"Ray address {quote(address)} {problem}")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ScanError(f"cannot reach the Ray cluster at {address}: {why}") from exc
