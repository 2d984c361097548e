"""The bot's HTTP side: check each delivery, respond at once, and carry out the work after responding.

``POST /`` and ``POST /hook`` take GitHub's (and Prow hook's) deliveries. The signature is
checked over the raw bytes before the body is parsed; then the delivery is routed, its id
claimed, and the decision queued. The response goes out before any GitHub call is made, well
within GitHub's 10-second timeout.

Decisions are queued per item (``owner/name#number``) and carried out in order, at most
``workers`` items at a time, in threads. When several classifications of one item wait
in line, only the newest runs: it reads the newest body, so the others would only add writes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from k8s_analysis.bot.deliveries import KEEP_SECONDS, DeliveryStore
from k8s_analysis.bot.events import Classify, Delivery, Ignore, route
from k8s_analysis.bot.github import GitHubCallError
from k8s_analysis.bot.handler import BUDGET_WINDOW_S, Handler, Work
from k8s_analysis.bot.metrics import BotMetrics
from k8s_analysis.bot.signature import SignatureError, verify
from k8s_analysis.serving.metrics import CONTENT_TYPE
from k8s_analysis.serving.models import ModelStore

logger = logging.getLogger(__name__)

# GitHub caps webhook payloads at 25 MB.
MAX_BODY_BYTES = 25 * 1024 * 1024
HOUSEKEEPING_INTERVAL_S = 3600.0


@dataclass
class BotSettings:
    secret: str | None
    """The webhook secret; None only with --insecure-no-signature."""
    bot_login: str
    state_path: Path
    api_url: str = "https://api.github.com"
    workers: int = 4
    reload_interval: float = 2.0
    drain_timeout_s: float = 30.0


class BotService:
    def __init__(self, settings: BotSettings, handler: Handler, deliveries: DeliveryStore, metrics: BotMetrics,
                 store: ModelStore | None = None) -> None:
        self.settings = settings
        self.handler = handler
        self.deliveries = deliveries
        self.metrics = metrics
        self.store = store
        self.handled = 0
        self.failed = 0
        self.last_failure: str | None = None
        self._queues: dict[str, collections.deque[Work]] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._stopping = False
        self._released: list[str] = []
        self._limiter = anyio.CapacityLimiter(settings.workers)

    # -- webhook ----------------------------------------------------------------

    async def webhook(self, request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return self._answer(413, "", "rejected", {"error": f"the body has {int(declared):,} bytes; GitHub "
                                                              f"sends at most {MAX_BODY_BYTES:,}"})
        body = await request.body()
        event = request.headers.get("x-github-event", "")
        if self.settings.secret is not None:
            try:
                verify(self.settings.secret, body, request.headers)
            except SignatureError as error:
                logger.warning("rejected delivery %s (%s): %s", request.headers.get("x-github-delivery", "?"),
                               event or "no event", error)
                return self._answer(401, event, "rejected", {"error": str(error)})
        delivery_id = request.headers.get("x-github-delivery", "")
        if not event or not delivery_id:
            missing = "X-GitHub-Event" if not event else "X-GitHub-Delivery"
            return self._answer(400, event, "rejected", {"error": f"the {missing} header is missing; this route "
                                                                  "takes GitHub webhook deliveries"})
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return self._answer(400, event, "rejected",
                                {"error": "the body is not a JSON object; set the webhook's content type to "
                                          "application/json"})

        decision = route(Delivery(delivery_id, event, payload), self.settings.bot_login)
        if isinstance(decision, Ignore):
            logger.info("delivery %s (%s): ignored: %s", delivery_id, event, decision.reason)
            return self._answer(200, event, "ignored", {"status": "ignored", "reason": decision.reason})
        claimed = await anyio.to_thread.run_sync(self.deliveries.claim, delivery_id, event)
        if not claimed:
            logger.info("delivery %s (%s): already handled; a redelivery is not handled twice", delivery_id, event)
            return self._answer(200, event, "duplicate", {"status": "duplicate"})
        key = decision.item.key
        self._enqueue(key, Work(decision, delivery_id))
        logger.info("delivery %s (%s %s): queued for %s", delivery_id, event, payload.get("action"), key)
        return self._answer(202, event, "queued", {"status": "queued", "item": key})

    def _answer(self, status: int, event: str, outcome: str, body: dict) -> Response:
        self.metrics.deliveries.labels(event or "none", outcome).inc()
        self.metrics.observe("/", status, None)
        return JSONResponse(body, status_code=status)

    # -- queue ------------------------------------------------------------------

    def _enqueue(self, key: str, work: Work) -> None:
        self._queues.setdefault(key, collections.deque()).append(work)
        self.metrics.pending.inc()
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._drain(key), name=f"bot {key}")

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                work = queue.popleft()
                if self._stopping:
                    self._release(work)
                    continue
                if isinstance(work.decision, Classify) and queue and isinstance(queue[0].decision, Classify):
                    logger.info("%s: delivery %s superseded by %s, which reads a newer body", key,
                                work.delivery_id, queue[0].delivery_id)
                    self._finish("superseded")
                    continue
                try:
                    async with self._limiter:
                        summary = await anyio.to_thread.run_sync(self.handler.handle, work)
                except GitHubCallError as error:
                    if self._stopping:
                        self._release(work)
                        continue
                    # Logged by the handler, without a traceback.
                    self._fail(work, str(error))
                    continue
                except Exception as error:  # noqa: BLE001 - one failed item must not stop the others
                    logger.exception("%s: delivery %s failed", key, work.delivery_id)
                    self._fail(work, f"{type(error).__name__}: {error}")
                    continue
                logger.info("delivery %s: %s", work.delivery_id, summary)
                self._finish("done")
        finally:
            self._tasks.pop(key, None)
            self._queues.pop(key, None)

    def _fail(self, work: Work, error: str) -> None:
        """Count a delivery that failed and forget its id, so that GitHub's "Redeliver" retries it."""
        self.deliveries.release(work.delivery_id)
        self.failed += 1
        self.last_failure = f"delivery {work.delivery_id} for {work.decision.item.key}: {error}"
        self._finish("failed")

    def _release(self, work: Work) -> None:
        """Give up a delivery at shutdown and forget its id, so that a redelivery is accepted."""
        self.deliveries.release(work.delivery_id)
        self._released.append(work.delivery_id)
        self._finish("released")

    def _finish(self, result: str) -> None:
        self.handled += 1
        self.metrics.pending.dec()
        self.metrics.handled.labels(result).inc()

    @property
    def pending(self) -> int:
        return sum(len(queue) for queue in self._queues.values()) + len(self._tasks)

    # -- other routes ------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        predictions = self.handler.predictions
        if predictions.ready:
            return True, predictions.describe()
        return False, f"no model is loaded yet: {self.store.last_error if self.store else predictions.describe()}"

    async def healthz(self, request: Request) -> Response:
        ready, model = await anyio.to_thread.run_sync(self.ready)
        body = {"status": "ok" if ready else "no model", "model": model, "pending": self.pending,
                "handled": self.handled, "failed": self.failed, "last_failure": self.last_failure,
                "dry_run": self.handler.github.dry_run}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_route(self, request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)

    async def housekeeping(self) -> None:
        """Forget old delivery ids and write records, at start and then every hour."""
        while True:
            deliveries = await anyio.to_thread.run_sync(self.deliveries.forget_older_than)
            await anyio.to_thread.run_sync(self.handler.state.forget_writes_before,
                                           time.time() - BUDGET_WINDOW_S)
            if deliveries:
                logger.info("forgot %d delivery id(s) older than %d days", deliveries, KEEP_SECONDS // 86_400)
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette):
        tasks = [asyncio.create_task(self.housekeeping())]
        if self.store is not None:
            await self.store.reload()
            if self.settings.reload_interval > 0:
                tasks.append(asyncio.create_task(self.store.watch(self.settings.reload_interval)))
        logger.info("bot ready as %s: GitHub API at %s, predictions from %s, state in %s%s", self.settings.bot_login,
                    self.settings.api_url, self.handler.predictions.describe(), self.settings.state_path,
                    " (dry run: no writes to GitHub, no feedback rows)" if self.handler.github.dry_run else "")
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._drain_all()
            self.deliveries.close()
            self.handler.state.close()

    async def _drain_all(self) -> None:
        tasks = list(self._tasks.values())
        if not tasks:
            return
        logger.info("finishing %d queued item(s) before stopping (at most %.0f s)", len(tasks),
                    self.settings.drain_timeout_s)
        _, unfinished = await asyncio.wait(tasks, timeout=self.settings.drain_timeout_s)
        if not unfinished:
            return
        # Cut the waits for GitHub short and give up what is left. The delivery ids are
        # released, so that GitHub's "Redeliver" is accepted after the restart.
        self._stopping = True
        self.handler.github.stop()
        await asyncio.gather(*unfinished, return_exceptions=True)
        logger.warning("stopped with %d delivery(ies) not carried out: %s; redeliver them from the webhook's "
                       "Recent Deliveries page", len(self._released), ", ".join(self._released))


def create_app(service: BotService) -> Starlette:
    async def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        elif error.status_code == 404:
            message = f"no route {request.url.path}; deliveries go to POST / or POST /hook"
        else:
            message = str(error.detail)
        service.metrics.observe(request.url.path, error.status_code, None)
        return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)

    async def unexpected_error(request: Request, error: Exception) -> Response:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return JSONResponse({"error": "internal error; the bot's log has the details"}, status_code=500)

    routes = [
        Route("/", service.webhook, methods=["POST"]),
        Route("/hook", service.webhook, methods=["POST"]),
        Route("/healthz", service.healthz, methods=["GET"]),
        Route("/metrics", service.metrics_route, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=service.lifespan,
                     exception_handlers={HTTPException: http_error, Exception: unexpected_error})
