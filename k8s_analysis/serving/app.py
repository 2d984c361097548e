"""The Starlette application: routes, error bodies, metrics, and the model's lifecycle.

Small requests are scored on the event loop, because a thread hop costs more than scoring one
note (about 0.2 ms). Requests with more than ``inline_texts`` texts go to a worker thread so
that they do not hold up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import Route

from k8s_analysis.model.bundle import Predictor
from k8s_analysis.model.explain import explain_texts
from k8s_analysis.serving import protocol
from k8s_analysis.serving.metrics import CONTENT_TYPE, ServerMetrics, mark_worker_stopped
from k8s_analysis.serving.models import ModelStore
from k8s_analysis.serving.protocol import Predictions, PredictionRequest, RequestError
from k8s_analysis.serving.settings import ServerSettings
from k8s_analysis.storage import redact_url

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


class ModelNameConvertor(Convertor):
    """A model name in a path: no ``/`` and no ``:``, so ``NAME:predict`` never matches ``/v1/models/{name}``."""

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("model", ModelNameConvertor())


class JSONBody(JSONResponse):
    """A JSON response written without spaces and without ASCII escapes (the bodies are texts)."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_body(status: int, message: str) -> JSONBody:
    return JSONBody({"error": message}, status_code=status)


class PredictionService:
    """The route handlers, bound to one model store and one set of metrics."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.metrics = ServerMetrics()
        self.store = ModelStore(settings.model_dir, settings.model_name, self.metrics)

    # Reading requests ------------------------------------------------------------------------

    async def read_body(self, request: Request) -> bytes:
        """Return the body, or raise 413 as soon as it is known to exceed the limit."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"the body has {int(declared):,} bytes, over this server's limit of "
                                    f"{limit:,}; send fewer or shorter texts per request, or start the server "
                                    "with a larger --max-body-bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"the body is over this server's limit of {limit:,} bytes; send fewer "
                                        "or shorter texts per request, or start the server with a larger "
                                        "--max-body-bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def check_name(self, request: Request) -> None:
        name = request.path_params["name"]
        if name != self.settings.model_name:
            raise RequestError(404, f"unknown model {name!r}; this server serves {self.settings.model_name!r}")

    def serving_predictor(self) -> Predictor:
        predictor = self.store.predictor
        if predictor is None:
            reason = self.store.last_error or "the model is still loading"
            raise RequestError(503, f"no model is loaded yet: {reason}")
        return predictor

    # Predicting ------------------------------------------------------------------------------

    async def predict(self, request: PredictionRequest) -> Predictions:
        predictor = self.serving_predictor()
        if request.explain and len(request.texts) > self.settings.max_explained_texts:
            raise RequestError(400, f"explanations are limited to {self.settings.max_explained_texts} texts per "
                                    f"request, and this one has {len(request.texts)}; split it, or leave out "
                                    "\"explain\"")
        # Explanations score each text once per word, so they always go to a thread.
        if len(request.texts) <= self.settings.inline_texts and not request.explain:
            predictions = self.score(predictor, request)
        else:
            predictions = await anyio.to_thread.run_sync(self.score, predictor, request)
        self.metrics.predictions.inc(len(request.texts))
        return predictions

    def score(self, predictor: Predictor, request: PredictionRequest) -> Predictions:
        try:
            probabilities, informative = predictor.score(request.texts, request.sigs, request.areas)
        except ValueError as error:
            # Raised for inputs the protocol checks let through, such as a sigs list of another length.
            raise RequestError(400, f"cannot score these texts: {error}") from None
        threshold = predictor.threshold
        rounded = [round(float(value), 6) for value in probabilities]
        low_information = [not bool(value) for value in informative]
        kind_bug = [bool(value >= threshold) and not low
                    for value, low in zip(probabilities, low_information, strict=True)]
        explanations = None
        if request.explain:
            try:
                explanations = explain_texts(predictor, request.texts, request.sigs, request.areas,
                                             self.settings.explain_top)
            except ValueError as error:
                raise RequestError(400, str(error)) from None
        return Predictions(rounded, kind_bug, low_information, threshold, predictor.version, explanations)

    # Routes ----------------------------------------------------------------------------------

    async def v1_predict(self, request: Request) -> Response:
        self.check_name(request)
        parsed = protocol.parse_v1(await self.read_body(request))
        return JSONBody(protocol.v1_response(parsed, await self.predict(parsed)))

    async def v1_explain(self, request: Request) -> Response:
        """Return a prediction with its explanation (KServe's explain route), whatever ``explain`` is set to."""
        self.check_name(request)
        parsed = protocol.parse_v1(await self.read_body(request))
        parsed.explain = True
        return JSONBody(protocol.v1_response(parsed, await self.predict(parsed)))

    async def v2_infer(self, request: Request) -> Response:
        self.check_name(request)
        parsed = protocol.parse_v2(await self.read_body(request))
        predictions = await self.predict(parsed)
        return JSONBody(protocol.v2_response(self.settings.model_name, parsed, predictions))

    async def v1_model(self, request: Request) -> Response:
        self.check_name(request)
        version = self.store.version
        body = {"name": self.settings.model_name, "ready": version is not None, "model_version": version,
                "model_source": redact_url(self.store.origin) if self.store.origin is not None else None}
        if version is None:
            body["error"] = self.store.last_error or "the model is still loading"
        return JSONBody(body, status_code=200 if version is not None else 503)

    async def v1_models(self, request: Request) -> Response:
        return JSONBody({"models": [self.settings.model_name]})

    async def v1_load(self, request: Request) -> Response:
        self.check_name(request)
        result = await self.store.reload()
        if result.error is not None:
            # The request was valid. 503 when nothing serves (as on every route); 500 when a
            # broken version was rejected and the old one still serves.
            status = 500 if result.version is not None else 503
            return JSONBody({"name": self.settings.model_name, "ready": result.version is not None,
                             "model_version": result.version, "error": result.error}, status_code=status)
        return JSONBody({"name": self.settings.model_name, "ready": True, "model_version": result.version,
                         "reloaded": result.loaded})

    async def v2_metadata(self, request: Request) -> Response:
        self.check_name(request)
        return JSONBody(protocol.v2_metadata(self.settings.model_name, self.serving_predictor().version))

    async def v2_model_ready(self, request: Request) -> Response:
        self.check_name(request)
        ready = self.store.predictor is not None
        return JSONBody({"name": self.settings.model_name, "ready": ready}, status_code=200 if ready else 503)

    async def v2_server(self, request: Request) -> Response:
        from importlib.metadata import version

        return JSONBody({"name": "k8s-analysis", "version": version("k8s-analysis"), "extensions": []})

    async def live(self, request: Request) -> Response:
        return JSONBody({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self.store.predictor is not None
        return JSONBody({"ready": ready}, status_code=200 if ready else 503)

    async def metrics_route(self, request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)

    def observed(self, route: str, handler: Handler) -> Handler:
        """Wrap a handler: time and count it, and turn request errors into JSON error bodies."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except RequestError as error:
                # Client errors are logged without the body, which may contain private text.
                logger.info("%s %s: %s %s", request.method, request.url.path, error.status, error.message)
                response = error_body(error.status, error.message)
            except Exception:
                logger.exception("%s %s failed", request.method, request.url.path)
                response = error_body(500, "internal error; the server log has the details")
            self.metrics.observe(route, response.status_code, time.perf_counter() - started)
            return response

        return endpoint

    def routes(self) -> list[Route]:
        table = [
            ("/v1/models", "GET", self.v1_models),
            ("/v1/models/{name}", "GET", self.v1_model),
            ("/v1/models/{name}:predict", "POST", self.v1_predict),
            ("/v1/models/{name}:explain", "POST", self.v1_explain),
            ("/v1/models/{name}/load", "POST", self.v1_load),
            ("/v2", "GET", self.v2_server),
            ("/v2/health/live", "GET", self.live),
            ("/v2/health/ready", "GET", self.ready),
            ("/v2/models/{name}", "GET", self.v2_metadata),
            ("/v2/models/{name}/ready", "GET", self.v2_model_ready),
            ("/v2/models/{name}/infer", "POST", self.v2_infer),
            ("/metrics", "GET", self.metrics_route),
        ]
        return [Route(path.replace("{name}", "{name:model}"), self.observed(path, handler), methods=[method])
                for path, method, handler in table]

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette):
        """Load the model before accepting connections, then watch for new versions.

        uvicorn accepts connections only after start-up, so with several workers none responds
        before its own model is loaded (about 0.1 s). Without a model the server still starts,
        not ready, and the watcher loads the first version that appears.
        """
        logger.info("serving model %r from %s", self.settings.model_name, self.settings.model_dir)
        await self.store.reload()
        tasks = []
        if self.settings.reload_interval > 0:
            tasks.append(asyncio.create_task(self.store.watch(self.settings.reload_interval)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            mark_worker_stopped()
            logger.info("prediction server stopped")


def http_error_handler(metrics: ServerMetrics):
    """Build the handler for routing errors (404 unknown path, 405 wrong method).

    Their bodies are JSON like the others, a 405 names the allowed method in ``Allow``, and
    they are counted under the route that matched the path, or ``unmatched``.
    """

    async def http_error(request: Request, error: HTTPException) -> Response:
        if error.status_code == 404 and request.url.path.startswith("/v1/models/") and ":" in request.url.path:
            message = f"no route {request.url.path}; the V1 verbs are :predict and :explain"
        elif error.status_code == 404:
            message = f"no route {request.url.path}; see GET /v1/models and /v2/models/NAME"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(error.detail)
        logger.info("%s %s: %s %s", request.method, request.url.path, error.status_code, message)
        route = request.scope.get("route")
        route_name = getattr(route, "path", "unmatched").replace("{name:model}", "{name}")
        metrics.observe(route_name, error.status_code, None)
        return JSONBody({"error": message}, status_code=error.status_code, headers=error.headers)

    return http_error


async def unexpected_error(request: Request, error: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return error_body(500, "internal error; the server log has the details")


def create_app(settings: ServerSettings) -> Starlette:
    service = PredictionService(settings)
    app = Starlette(routes=service.routes(), lifespan=service.lifespan,
                    exception_handlers={HTTPException: http_error_handler(service.metrics),
                                        Exception: unexpected_error})
    app.state.service = service
    return app
