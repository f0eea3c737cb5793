"""Ray start-up, and the private Ray APIs this project uses, each named here once (tests/test_private_apis.py
pins them): the loggers quieted, the switch that keeps a local cluster on loopback, and Tune's stop handler."""
from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

from wfsearch.errors import UserError
from wfsearch.gpu import gpu_count

log = logging.getLogger(__name__)

QUIET_LOGGERS = {  # the study is the record: Tune's own result and state files are never read back (a full disk is
    # reported once, by the study); token authentication on a loopback cluster is noise
    "ray.tune.analysis.experiment_analysis": logging.ERROR,
    "ray.train._internal.syncer": logging.CRITICAL,
    "ray.tune.execution.experiment_state": logging.CRITICAL,
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
}


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast with one line when HOST:PORT does not answer (Ray itself retries for minutes)."""
    import socket

    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r}: use auto or HOST:PORT (the head's GCS port, 6379 by default)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise UserError(f"--address {address}: no Ray head answers there ({e.strerror or e}); "
                        "start one with `ray start --head`") from None


LOCAL_HEALTH_CHECKS = {"health_check_period_ms": 3000, "health_check_timeout_ms": 60_000,
                       "health_check_failure_threshold": 200}  # 10 min of missed checks before a node is dead


def init_ray(address: str | None, log_dir: Path | None = None) -> None:
    """Join the Ray cluster at ``address``, or start a local one of this run's own on loopback."""
    import ray

    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    if ray.is_initialized():
        return
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=True,
                                  logging_level=logging.WARNING)
    if address:
        _check_reachable(address)
        if address.split(":")[0] in ("127.0.0.1", "localhost"):
            kwargs["_node_ip_address"] = "127.0.0.1"  # a head started with --node-ip-address=127.0.0.1
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"--address {address}: cannot join the Ray cluster ({str(e).splitlines()[0]}); "
                            "start one with `ray start --head`") from e
    else:
        keep_on_loopback()
        # "local": a new cluster of this run's own even where `ray start` left one; a local node is only ever
        # starved (every core training), never lost, so late health checks do not end the run
        ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=gpu_count(), _node_ip_address="127.0.0.1",
                 _system_config=LOCAL_HEALTH_CHECKS, **kwargs)


def keep_on_loopback() -> None:
    """Make every process of a local Ray cluster listen on 127.0.0.1 only. ``_node_ip_address`` alone is not
    enough: Ray turns a loopback address into the routable one unless multi-node clustering is off (its switch is
    named for Windows and macOS); off here, for the driver and, through the environment, every process Ray starts.
    """
    import ray._private.ray_constants as ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        ray_constants.ENABLE_RAY_CLUSTER = False


def concurrency(spec: Any, res: dict | None = None, where: str = "the Ray cluster") -> int:
    """Trials at once on ``res`` (default: the cluster's), at most ``max_concurrent``; a trial too large: one line."""
    if res is None:
        import ray

        res = ray.cluster_resources()
    cpus = spec.resources.cpus_per_trial
    gpus = spec.resources.gpus_per_trial
    fit = int(res.get("CPU", 1) // cpus) if cpus else 1_000_000
    if gpus:
        fit = min(fit, int(res.get("GPU", 0) // gpus))
    if fit < 1:
        key, value = ("cpus_per_trial", cpus) if res.get("CPU", 0) < cpus else ("gpus_per_trial", gpus)
        raise UserError(f"{getattr(spec, 'path', None) or 'spec'}: resources.{key}: {value:g}: a trial needs {cpus:g} "
                        f"CPU and {gpus:g} GPU, but {where} has {res.get('CPU', 0):g} CPU and {res.get('GPU', 0):g} "
                        "GPU, so no trial could ever start; lower resources.cpus_per_trial/gpus_per_trial")
    if spec.resources.max_concurrent:
        fit = min(fit, spec.resources.max_concurrent)
    return max(1, fit)


REMOTE_WAIT_S = 6 * 3600.0  # the longest a reference's evaluation or the speed calibration may take


def await_result(future: Any, spec: Any, what: str, poll_s: float = 10.0) -> Any:
    """``ray.get(future)``, refused with one line once the cluster cannot fit a trial, or after ``REMOTE_WAIT_S``."""
    import ray

    deadline = time.monotonic() + REMOTE_WAIT_S
    while not ray.wait([future], timeout=poll_s)[0]:
        concurrency(spec)
        if time.monotonic() > deadline:
            ray.cancel(future, force=True)
            raise UserError(f"{what}: no result after {REMOTE_WAIT_S / 3600:g} h; check the Ray cluster "
                            f"(`ray status`) and run again")
    return ray.get(future)


def shutdown_ray() -> None:
    import ray

    if ray.is_initialized():
        try:
            ray.shutdown()
        except Exception as e:  # stopping anyway
            log.warning("ray.shutdown: %s", e)


def tune_stop_handler() -> Callable[[int, Any], None] | None:
    """Tune's own "end the run now" handler while a `Tuner` runs (Tune sets it for SIGUSR1), else None."""
    handler = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
    return handler if callable(handler) else None
