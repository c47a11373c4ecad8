"""A notebook's runs as jobs (:mod:`podd.executors`): submitted, then gathered in order."""

from __future__ import annotations

from typing import Any

from podd.modes import check_class_order
from podd.notebooks.data_choice import DataRequest, request_for
from podd.notebooks.experiment import RunOutcome, distill_and_evaluate, real_reference


def _distill_job(config, data, row_extra: dict) -> RunOutcome:
    ds = data.load() if isinstance(data, DataRequest) else data
    return distill_and_evaluate(config, ds, **row_extra)


def _reference_job(config, data, images_per_class: int, subset_seed: int) -> RunOutcome:
    ds = data.load() if isinstance(data, DataRequest) else data
    return real_reference(ds, config, images_per_class, subset_seed)


class Sweep:
    """A notebook's runs, submitted to an executor and gathered in the order submitted.

    ``executor``: ``"local"`` (default: each run in this kernel when submitted, as before),
    ``"slurm"`` (one job per run via submitit), ``"debug"``/``"submitit-local"`` (submitit
    without a cluster), or an object from :func:`podd.executors.make_executor`;
    ``executor_options``: its settings (``workers``, ``partition``, ``time_min``, ``gpus`` …; see
    :mod:`podd.executors`). A job elsewhere receives the :class:`DataRequest` of ``data`` (when
    :func:`~podd.notebooks.data_choice.load_for_profile` made it) and loads the data itself; the
    runs are deterministic, so the results are the same as in this kernel::

        sweep = Sweep(data, executor)
        for ipc in ipcs:
            sweep.distill(run_config(data, profile, ipc=ipc))
        outcomes = sweep.gather()
    """

    def __init__(self, data, executor: Any = "local", **executor_options):
        from podd.executors import make_executor

        self.executor = make_executor(executor, **executor_options) \
            if isinstance(executor, str) else executor
        self.data = data
        self._payload = self._payload_for(data)
        self.futures: list[Any] = []

    def _payload_for(self, data):
        """What a job receives: the data itself when it runs in this process (or when no request
        is known for it), else the request, so a job elsewhere loads the images itself."""
        request = request_for(data)
        inline = getattr(self.executor, "in_process", False)
        return data if inline or request is None else request

    def distill(self, config, **row_extra):
        """Submit :func:`distill_and_evaluate` of ``config`` (``row_extra`` goes into its row).
        Its class order is resolved first: missing CLIP weights stop the sweep here, before any
        of its runs."""
        check_class_order(config, self.data.class_names, tuple(self.data.image_shape))
        future = self.executor.submit(_distill_job, config, self._payload, row_extra)
        self.futures.append(future)
        return future

    def reference(self, config, images_per_class: int = 1, subset_seed: int = 0):
        """Submit :func:`real_reference` (random real images, evaluated like the posters)."""
        future = self.executor.submit(_reference_job, config, self._payload, images_per_class,
                                      subset_seed)
        self.futures.append(future)
        return future

    def gather(self) -> list[RunOutcome]:
        """Every submitted run's :class:`RunOutcome`, in submission order (waits for them)."""
        from podd.executors import gather

        return gather(self.futures)
