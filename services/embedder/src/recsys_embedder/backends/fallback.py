"""Triton first, the in-process CPU network while Triton is unavailable (issue #18).

Both run the same artifact: the loader checks at load that Triton serves the artifact's version
and gives the same vectors as the in-process network, so a query answered on CPU has the same
``model_version`` and (to 1e-4) the same vector as on Triton.

- A Triton call that fails as unavailable (``DependencyUnavailable``: connection refused, model
  not ready, timeout) is answered again on CPU and the backend switches to CPU. (Start-up and
  Reload still need Triton: a model is only taken into service after Triton was checked
  against it, vector for vector; see ``loader.warm_up``.)
- A monitor checks Triton every ``check_interval_s``: on CPU, whether it is back (ready, serving
  this artifact's version); on Triton, whether it still serves this artifact's
  version (a ``triton-load`` of another export while this pod still serves the old model), else
  it switches to CPU until it does. Between the change and the next check (at most
  ``check_interval_s``) a call may still get Triton's new model; switch the embedders right after
  triton-load (deploy/README.md, "Releasing a model").
- Each switch is logged once (a warning to CPU, info back to Triton) and shown in the gauge
  ``recsys_embedder_backend_fallback`` (1 while on CPU) and in ModelInfo's ``backend``
  (``torch-cpu (triton fallback)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import numpy as np
from prometheus_client import Gauge
from recsys_core.errors import DependencyUnavailable, FailedPrecondition

from recsys_embedder.backends.base import QueryBatch
from recsys_embedder.backends.torch_backend import TorchQueryBackend
from recsys_embedder.backends.triton_backend import TritonQueryBackend

log = logging.getLogger(__name__)

FALLBACK = Gauge(
    "recsys_embedder_backend_fallback",
    "1 while the embedder answers on its in-process CPU model because Triton is unavailable",
    ["model_version"],
)


class FallbackQueryBackend:
    """``QueryBackend``: ``primary`` (Triton) while it works, ``fallback`` (in-process) otherwise."""

    def __init__(
        self,
        primary: TritonQueryBackend,
        fallback: TorchQueryBackend,
        *,
        version: str,
        dimension: int,
        check_interval_s: float = 5.0,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.version = version
        self.dimension = dimension
        self.check_interval_s = check_interval_s
        self.on_fallback = False
        #: what ModelInfo reports: "triton", or "torch-cpu (triton fallback)" while on CPU
        self.name = primary.name
        self.switches = 0
        self._monitor: asyncio.Task[None] | None = None
        self._closed = False
        FALLBACK.labels(model_version=version).set(0)

    def start(self) -> None:
        """Start the monitor (in the running loop)."""
        if self._monitor is None and self.check_interval_s > 0:
            self._monitor = asyncio.get_running_loop().create_task(self._watch(), name="triton-monitor")

    def _switch(self, to_fallback: bool, why: str) -> None:
        if to_fallback == self.on_fallback:
            return
        self.on_fallback = to_fallback
        self.name = f"{self.fallback.name} (triton fallback)" if to_fallback else self.primary.name
        self.switches += 1
        FALLBACK.labels(model_version=self.version).set(1 if to_fallback else 0)
        if to_fallback:
            log.warning(
                "triton unavailable (%s): answering on %s, model %s", why, self.fallback.name, self.version
            )
        else:
            log.info("triton back: answering on triton again, model %s", self.version)

    async def embed_queries(self, batch: QueryBatch) -> np.ndarray:
        if not self.on_fallback:
            try:
                return await self.primary.embed_queries(batch)
            except DependencyUnavailable as exc:
                self._switch(True, exc.message)
        return await self.fallback.embed_queries(batch)

    async def _healthy(self) -> str:
        """ "" when Triton serves this artifact, else why not."""
        try:
            await self.primary.check(self.version, self.dimension)
        except (DependencyUnavailable, FailedPrecondition) as exc:
            return exc.message
        return ""

    async def _watch(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.check_interval_s)
            why = await self._healthy()
            if why:
                self._switch(True, why)
            elif self.on_fallback:
                self._switch(False, "")

    async def close(self) -> None:
        self._closed = True
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._monitor
        with contextlib.suppress(KeyError):
            FALLBACK.remove(self.version)
        await self.primary.close()
        await self.fallback.close()
