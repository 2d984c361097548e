"""A fake GitHub REST API on 127.0.0.1 for tests and benchmarks of the live issue exporter.

The server serves the routes an issue export uses (`/rate_limit`, `/user`, the repository,
its issue list and single issues) with GitHub's pagination, ETags, rate-limit headers and
error bodies. Its items are built from the real issue objects in the shared data.

Generated items are held as an index of `ItemMeta` records that point at about 1,100
pre-serialized templates, so 135,000 items take tens of MB instead of the 1.2 GB their JSON
would need. Run `python -m k8s_analysis_tests.fake_github --items N` to serve them to
another process.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import collections
import dataclasses
import functools
import hashlib
import json
import logging
import random
import re
import signal
import socket
import tarfile
import threading
import time
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

from k8s_analysis_tests.shared_data import shared_path

logger = logging.getLogger(__name__)

GITHUB_API_ROOT = "https://api.github.com"
DOCUMENTATION_URL = "https://docs.github.com/rest"
RATE_LIMIT_DOCUMENTATION_URL = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
)
STATS_PATH = "/_fake/stats"
BOT_USER = {"login": "k8s-analysis-bot", "id": 1, "type": "Bot"}

ANONYMOUS_RATE_LIMIT = 60
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
MAX_PAGE = 100
PAGE_LIMIT_MESSAGE = (
    "Pagination with the page parameter is not supported for large datasets, "
    "please use cursor based pagination (after/before)"
)
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)

# Item n of a generated set is created at FIRST_CREATED_EPOCH + n * CREATED_STEP_S plus a
# jitter below CREATED_STEP_S, so created_at grows with the number and 135,000 items span
# about 9.5 years from 2014-06-01.
FIRST_CREATED_EPOCH = 1_401_580_800
CREATED_STEP_S = 2_220
MAX_UPDATE_DELAY_S = 2 * 365 * 86_400
FIRST_ITEM_ID = 4_000_000_000

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
REPOSITORY_PATTERN = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
SOURCE_URL_PATTERN = re.compile(r"https://api\.github\.com/repos/([^/]+/[^/]+)/issues/(\d+)")
REPOSITORY_URL_PATTERN = re.compile(r"/repos/([^/]+/[^/]+)$")
TOKEN_PATTERN = re.compile(rb"@@fake:(\w+)@@")
ITEM_URL_KEYS = ("url", "html_url", "labels_url", "comments_url", "events_url", "timeline_url")
ISSUE_SORTS = ("created", "updated", "comments")

_REPOSITORY_PATH = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
_REPOSITORY_ID_PATH = r"/repositories/(?P<repository_id>\d+)"
_ISSUE_PATH = r"/issues/(?P<number>\d+)"
_COMMENT_PATH = r"/issues/comments/(?P<comment_id>\d+)"
# Method, label, path pattern and FakeGitHub handler method of each route.
_ROUTES = tuple(
    (method, label, re.compile(pattern), handler_name)
    for method, label, pattern, handler_name in (
        ("GET", "GET /rate_limit", r"/rate_limit", "_get_rate_limit"),
        ("GET", "GET /user", r"/user", "_get_user"),
        ("GET", "GET /repos/{owner}/{name}", _REPOSITORY_PATH, "_get_repository"),
        ("GET", "GET /repos/{owner}/{name}/issues", _REPOSITORY_PATH + "/issues", "_list_issues"),
        ("GET", "GET /repos/{owner}/{name}/issues/{number}", _REPOSITORY_PATH + _ISSUE_PATH, "_get_issue"),
        ("GET", "GET /repositories/{id}", _REPOSITORY_ID_PATH, "_get_repository"),
        ("GET", "GET /repositories/{id}/issues", _REPOSITORY_ID_PATH + "/issues", "_list_issues"),
        ("GET", "GET /repositories/{id}/issues/{number}", _REPOSITORY_ID_PATH + _ISSUE_PATH, "_get_issue"),
        # The routes a labelling bot writes through: an issue's comments and labels.
        ("GET", "GET /repos/{owner}/{name}/issues/{number}/comments",
         _REPOSITORY_PATH + _ISSUE_PATH + "/comments", "_list_comments"),
        ("POST", "POST /repos/{owner}/{name}/issues/{number}/comments",
         _REPOSITORY_PATH + _ISSUE_PATH + "/comments", "_create_comment"),
        ("PATCH", "PATCH /repos/{owner}/{name}/issues/comments/{id}", _REPOSITORY_PATH + _COMMENT_PATH,
         "_edit_comment"),
        ("DELETE", "DELETE /repos/{owner}/{name}/issues/comments/{id}", _REPOSITORY_PATH + _COMMENT_PATH,
         "_delete_comment"),
        ("GET", "GET /repos/{owner}/{name}/issues/{number}/labels",
         _REPOSITORY_PATH + _ISSUE_PATH + "/labels", "_list_labels"),
        ("POST", "POST /repos/{owner}/{name}/issues/{number}/labels",
         _REPOSITORY_PATH + _ISSUE_PATH + "/labels", "_add_labels"),
        ("DELETE", "DELETE /repos/{owner}/{name}/issues/{number}/labels/{label}",
         _REPOSITORY_PATH + _ISSUE_PATH + r"/labels/(?P<label>[^/]+)", "_remove_label"),
    )
)
WRITE_METHODS = ("POST", "PATCH", "DELETE")


# ---------------------------------------------------------------------------
# Items


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class ItemMeta:
    """One served issue: its index fields plus either a template index or its JSON bytes."""

    id: int
    number: int
    created_at: str
    updated_at: str
    state: str
    is_pull_request: bool
    comments: int
    repository: str
    closed_at: str | None = None
    template: int | None = None
    data: bytes | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _Template:
    """A source object serialized once, split into literal bytes and token names."""

    parts: tuple[bytes | str, ...]
    state: str
    is_pull_request: bool
    comments: int
    update_delay_s: int
    close_delay_s: int | None


def _format_time(epoch_s: float) -> str:
    return time.strftime(TIME_FORMAT, time.gmtime(epoch_s))


def _parse_time(value: str) -> datetime:
    """Parse an ISO 8601 time. A value without a zone is taken as UTC."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _normalize_time(value: str) -> str:
    return _parse_time(value).astimezone(UTC).strftime(TIME_FORMAT)


def _check_repository(repository: str) -> None:
    if not REPOSITORY_PATTERN.fullmatch(repository):
        raise ValueError(f"invalid repository {repository!r}: expected 'owner/name'")


def _move_repository_urls(value, old: str, new: str):
    """Return `value` with `old` replaced by `new` in every URL field, at any depth.

    Only keys named `url` or ending in `_url` change, so titles and bodies keep their text.
    """
    api_pattern = re.compile(rf"/repos/{re.escape(old)}(?=/|$)")
    web_pattern = re.compile(rf"https://github\.com/{re.escape(old)}(?=/|$)")

    def move(node):
        if isinstance(node, dict):
            moved = {}
            for key, child in node.items():
                if isinstance(child, str) and (key == "url" or key.endswith("_url")):
                    child = api_pattern.sub(f"/repos/{new}", child)
                    child = web_pattern.sub(f"https://github.com/{new}", child)
                moved[key] = move(child) if isinstance(child, dict | list) else child
            return moved
        if isinstance(node, list):
            return [move(child) for child in node]
        return node

    return move(value)


def _build_template(source: dict) -> _Template:
    """Turn one real issue object into a template with tokens for the per-item fields."""
    original_repository, original_number = SOURCE_URL_PATTERN.fullmatch(source["url"]).groups()
    item = {key: value for key, value in source.items() if key != "closed_by"}
    item = _move_repository_urls(item, original_repository, "@@fake:repo@@")

    number_pattern = re.compile(rf"/(issues|pull|pulls)/{original_number}(?=$|[/{{.])")
    for key in ITEM_URL_KEYS:
        if isinstance(item.get(key), str):
            item[key] = number_pattern.sub(r"/\1/@@fake:number@@", item[key])
    if isinstance(item.get("pull_request"), dict):
        pull_request = dict(item["pull_request"])
        for key, value in pull_request.items():
            if isinstance(value, str) and key.endswith("url"):
                pull_request[key] = number_pattern.sub(r"/\1/@@fake:number@@", value)
        item["pull_request"] = pull_request

    created = _parse_time(source["created_at"])
    update_delay_s = int((_parse_time(source["updated_at"]) - created).total_seconds())
    update_delay_s = min(max(update_delay_s, 0), MAX_UPDATE_DELAY_S)
    close_delay_s = None
    if source.get("closed_at"):
        close_delay_s = int((_parse_time(source["closed_at"]) - created).total_seconds())
        close_delay_s = min(max(close_delay_s, 0), update_delay_s)
        item["closed_at"] = "@@fake:closed_at@@"

    item["repository_url"] = f"{GITHUB_API_ROOT}/repos/@@fake:repo@@"
    item["id"] = "@@fake:id@@"
    item["number"] = "@@fake:number@@"
    item["created_at"] = "@@fake:created_at@@"
    item["updated_at"] = "@@fake:updated_at@@"
    if item.get("node_id"):
        item["node_id"] = "@@fake:node_id@@"

    text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    # id and number are JSON numbers, so their tokens lose the quotes.
    text = text.replace('"@@fake:id@@"', "@@fake:id@@")
    text = text.replace('"@@fake:number@@"', "@@fake:number@@")
    pieces = TOKEN_PATTERN.split(text.encode())
    parts = tuple(piece if i % 2 == 0 else piece.decode() for i, piece in enumerate(pieces))
    return _Template(
        parts=parts,
        state=source["state"],
        is_pull_request="pull_request" in source,
        comments=int(source.get("comments") or 0),
        update_delay_s=update_delay_s,
        close_delay_s=close_delay_s,
    )


def _load_source_objects() -> list[dict]:
    """Read the 744 kubernetes pull requests and the 388 PyGithub replay issues."""
    archive = shared_path("data", "kubernetes-prs", "kubernetes-prs-api.tar.xz")
    with tarfile.open(archive, mode="r:xz") as tar:
        pull_requests = json.load(tar.extractfile("api.json"))
    replay_path = shared_path("data", "pygithub-replaydata", "issues_from_replaydata.json")
    replay_items = json.loads(replay_path.read_text(encoding="utf-8"))
    return pull_requests + replay_items


@functools.lru_cache(maxsize=1)
def _templates() -> tuple[_Template, ...]:
    return tuple(_build_template(source) for source in _load_source_objects())


def _render_template(parts: tuple[bytes | str, ...], meta: ItemMeta) -> bytes:
    """Fill a template's tokens with one item's fields."""
    kind = "PR" if meta.is_pull_request else "I"
    values = {
        "id": str(meta.id).encode(),
        "number": str(meta.number).encode(),
        "node_id": f"{kind}_fake{meta.id}".encode(),
        "created_at": meta.created_at.encode(),
        "updated_at": meta.updated_at.encode(),
        "closed_at": (meta.closed_at or "").encode(),
        "repo": meta.repository.encode(),
    }
    filled = list(parts)
    filled[1::2] = [values[name] for name in parts[1::2]]
    return b"".join(filled)


def make_item_index(
    count: int, repository: str = "kubernetes/kubernetes", start_number: int = 1, seed: int = 0
) -> list[ItemMeta]:
    """Build `count` template-backed items numbered from `start_number`, for FakeGitHub.

    Item n reuses a real object chosen by n and `seed`, with id FIRST_ITEM_ID + n and a
    created_at that grows with n, so sets built with consecutive numbers join up.
    """
    _check_repository(repository)
    if start_number < 1:
        raise ValueError(f"invalid start_number {start_number}: issue numbers start at 1")
    templates = _templates()
    order = list(range(len(templates)))
    random.Random(seed).shuffle(order)

    metas = []
    for number in range(start_number, start_number + count):
        template_index = order[(number - 1) % len(order)]
        template = templates[template_index]
        jitter_s = (number * 7_919 + seed * 104_729) % CREATED_STEP_S
        created_s = FIRST_CREATED_EPOCH + number * CREATED_STEP_S + jitter_s
        closed_at = None
        if template.close_delay_s is not None:
            closed_at = _format_time(created_s + template.close_delay_s)
        metas.append(
            ItemMeta(
                id=FIRST_ITEM_ID + number,
                number=number,
                created_at=_format_time(created_s),
                updated_at=_format_time(created_s + template.update_delay_s),
                state=template.state,
                is_pull_request=template.is_pull_request,
                comments=template.comments,
                repository=repository,
                closed_at=closed_at,
                template=template_index,
            )
        )
    return metas


def make_item_bytes(
    count: int, repository: str = "kubernetes/kubernetes", start_number: int = 1, seed: int = 0
) -> list[tuple[ItemMeta, bytes]]:
    """Build items as (index record, JSON bytes) pairs, with URLs under api.github.com.

    Pass the index records to FakeGitHub. The bytes of 135,000 items take about 1.2 GB.
    """
    templates = _templates()
    metas = make_item_index(count, repository, start_number, seed)
    return [(meta, _render_template(templates[meta.template].parts, meta)) for meta in metas]


def make_items(
    count: int, repository: str = "kubernetes/kubernetes", start_number: int = 1, seed: int = 0
) -> list[dict]:
    """Build `count` issue objects from the real objects in the shared data.

    Numbers run from `start_number`, ids are unique, created_at grows with the number,
    updated_at >= created_at, and there is no `closed_by` key. URLs point at
    https://api.github.com, and FakeGitHub serves them under its own base_url, as a GitHub
    Enterprise server does. For large counts use make_item_index instead.
    """
    return [json.loads(data) for _, data in make_item_bytes(count, repository, start_number, seed)]


def _meta_from_item(item: dict, default_repository: str) -> ItemMeta:
    """Index a whole issue object and store it as compact JSON without `closed_by`."""
    repository = default_repository
    match = REPOSITORY_URL_PATTERN.search(item.get("repository_url") or "")
    if match:
        repository = match.group(1)
    stored = {key: value for key, value in item.items() if key != "closed_by"}
    return ItemMeta(
        id=int(item["id"]),
        number=int(item["number"]),
        created_at=_normalize_time(item["created_at"]),
        updated_at=_normalize_time(item["updated_at"]),
        state=item["state"],
        is_pull_request="pull_request" in item,
        comments=int(item.get("comments") or 0),
        repository=repository,
        closed_at=item.get("closed_at"),
        data=json.dumps(stored, ensure_ascii=False, separators=(",", ":")).encode(),
    )


# ---------------------------------------------------------------------------
# Requests, faults and rate budgets


class RequestHeaders(dict):
    """Request headers stored under lower-case names, with lookups that ignore case."""

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def get(self, name: str, default=None):
        return super().get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request the server received. Status 0 means the connection was dropped."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: RequestHeaders
    status: int
    route: str
    body: bytes = b""

    def json(self):
        """The request body parsed as JSON (None when it was empty)."""
        return json.loads(self.body) if self.body else None


@dataclasses.dataclass
class _Conversation:
    """The comments and labels of one issue or pull request, as the bot's write routes change them."""

    labels: list[str]
    comments: dict[int, dict] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _Fault:
    status: int
    body: dict | None
    headers: dict[str, str]
    times: int
    path_contains: str
    method: str | None = None
    after: bool = False


@dataclasses.dataclass
class _Budget:
    """A primary rate-limit window: `limit` requests until `reset_at` (epoch seconds)."""

    limit: int
    remaining: int
    reset_at: float
    window_s: float

    def refresh(self, now: float) -> None:
        if now >= self.reset_at:
            self.remaining = self.limit
            self.reset_at = now + self.window_s

    def as_json(self) -> dict:
        return {
            "limit": self.limit,
            "remaining": self.remaining,
            "reset": int(self.reset_at),
            "used": self.limit - self.remaining,
            "resource": "core",
        }

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(int(self.reset_at)),
            "X-RateLimit-Used": str(self.limit - self.remaining),
            "X-RateLimit-Resource": "core",
        }


@dataclasses.dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    route: str = ""
    content_type: str = "application/json; charset=utf-8"
    drop_connection: bool = False


class _ApiError(Exception):
    """An error response that a route handler returns by raising."""

    def __init__(self, status: int, body: dict, headers: dict[str, str] | None = None):
        super().__init__(body.get("message"))
        self.status = status
        self.body = body
        self.headers = headers or {}


def _json_bytes(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error_body(message: str, status: int, documentation_url: str = DOCUMENTATION_URL) -> dict:
    """Build GitHub's error body, which repeats the HTTP status as a string."""
    return {"message": message, "documentation_url": documentation_url, "status": str(status)}


def _not_found() -> _ApiError:
    return _ApiError(404, _error_body("Not Found", 404))


def _validation_failed(field: str) -> _ApiError:
    # NOTE: GitHub's exact body for an invalid list parameter is a guess, built on its
    # usual "Validation Failed" shape with the field named.
    return _ApiError(
        422,
        {
            "message": "Validation Failed",
            "errors": [{"resource": "Issue", "field": field, "code": "invalid"}],
            "documentation_url": DOCUMENTATION_URL,
            "status": "422",
        },
    )


def _parse_payload(body: bytes):
    """Parse a write request's JSON body, failing as GitHub does on bad JSON."""
    try:
        return json.loads(body) if body else {}
    except ValueError:
        raise _ApiError(400, _error_body("Problems parsing JSON", 400)) from None


def _required_string(payload, field: str) -> str:
    value = payload.get(field) if isinstance(payload, dict) else None
    if not isinstance(value, str):
        raise _validation_failed(field)
    return value


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    strong_tag = etag.removeprefix("W/")
    candidates = (value.strip().removeprefix("W/") for value in if_none_match.split(","))
    return any(candidate in (strong_tag, "*") for candidate in candidates)


# ---------------------------------------------------------------------------
# Issue lists


@dataclasses.dataclass(frozen=True)
class _ListQuery:
    state: str
    sort: str
    direction: str
    per_page: int
    page: int
    since: str | None
    cursor: tuple | None


def _int_or_default(values: list[str] | None, default: int) -> int:
    try:
        return int(values[0]) if values else default
    except ValueError:
        return default


def _encode_cursor(sort: str, direction: str, key: tuple) -> str:
    payload = "cursor:v2:" + json.dumps([sort, direction, *key])
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _decode_cursor(cursor: str, sort: str, direction: str) -> tuple:
    """Return the (sort value, id) key of the item a cursor points after."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = base64.urlsafe_b64decode(padded.encode()).decode()
        fields = json.loads(payload.removeprefix("cursor:v2:"))
        cursor_sort, cursor_direction, value, item_id = fields
    except (ValueError, TypeError) as error:
        raise _ApiError(422, _error_body(f"Invalid cursor {cursor!r}", 422)) from error
    if (cursor_sort, cursor_direction) != (sort, direction):
        # NOTE: GitHub's message for a cursor reused with another sort is not known.
        message = f"Cursor {cursor!r} was made for another sort or direction"
        raise _ApiError(422, _error_body(message, 422))
    return (value, item_id)


def _parse_list_query(query: dict[str, list[str]]) -> _ListQuery:
    state = query.get("state", ["open"])[0]
    sort = query.get("sort", ["created"])[0]
    direction = query.get("direction", ["desc"])[0]
    if state not in ("open", "closed", "all"):
        raise _validation_failed("state")
    if sort not in ISSUE_SORTS:
        raise _validation_failed("sort")
    if direction not in ("asc", "desc"):
        raise _validation_failed("direction")

    per_page = _int_or_default(query.get("per_page"), DEFAULT_PER_PAGE)
    per_page = DEFAULT_PER_PAGE if per_page < 1 else min(per_page, MAX_PER_PAGE)
    page = max(_int_or_default(query.get("page"), 1), 1)
    cursor = None
    if query.get("after"):
        cursor = _decode_cursor(query["after"][0], sort, direction)
    elif page > MAX_PAGE:
        raise _ApiError(422, _error_body(PAGE_LIMIT_MESSAGE, 422))

    since = None
    if query.get("since"):
        try:
            since = _normalize_time(query["since"][0])
        except ValueError as error:
            raise _validation_failed("since") from error
    return _ListQuery(state, sort, direction, per_page, page, since, cursor)


def _sort_key(meta: ItemMeta, sort: str) -> tuple:
    if sort == "updated":
        return (meta.updated_at, meta.id)
    if sort == "comments":
        return (meta.comments, meta.id)
    return (meta.created_at, meta.id)


def _select_page(
    keys: list[tuple], metas: list[ItemMeta], query: _ListQuery
) -> tuple[list[ItemMeta], bool]:
    """Return one page of the sorted items and whether more follow.

    A cursor contains the sort key of the last item served, so edits between requests never
    shift the items that follow it (an updated item may move in an `updated` sort).
    """
    ascending = query.direction == "asc"
    if ascending:
        start = 0 if query.cursor is None else bisect.bisect_right(keys, query.cursor)
        if query.since and query.sort == "updated":
            start = max(start, bisect.bisect_left(keys, (query.since,)))
        indices = range(start, len(keys))
    else:
        end = len(keys) if query.cursor is None else bisect.bisect_left(keys, query.cursor)
        indices = range(end - 1, -1, -1)

    to_skip = 0 if query.cursor is not None else (query.page - 1) * query.per_page
    page: list[ItemMeta] = []
    for index in indices:
        meta = metas[index]
        if query.since and meta.updated_at < query.since:
            if query.sort == "updated" and not ascending:
                break
            continue
        if to_skip:
            to_skip -= 1
            continue
        if len(page) == query.per_page:
            return page, True
        page.append(meta)
    return page, False


# ---------------------------------------------------------------------------
# HTTP plumbing


class _HttpServer(ThreadingHTTPServer):
    # Handler threads are joined in server_close(), so stop() leaves none behind.
    daemon_threads = False
    block_on_close = True
    fake: FakeGitHub

    def handle_error(self, request, client_address) -> None:
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeGitHub/1.0"
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        self.server.fake._track_connection(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track_connection(self.connection, open_=False)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = RequestHeaders((name.lower(), value) for name, value in self.headers.items())
        response = self.server.fake._handle(method, self.path, headers, body)
        if response.drop_connection:
            self.close_connection = True
            return

        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 304:
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.status != 304:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


# ---------------------------------------------------------------------------
# The server


class FakeGitHub:
    """A GitHub REST server on 127.0.0.1 that serves one repository's issues.

    Issue numbers are unique across the server: a transferred issue keeps its number.
    """

    def __init__(
        self,
        items: list[dict] | list[ItemMeta] | None = None,
        *,
        repository: str = "kubernetes/kubernetes",
        repository_id: int = 20580498,
        token: str = "test-token",
        rate_limit: int = 5000,
        reset_after_s: float = 3600.0,
        latency_s: float = 0.0,
        api_prefix: str = "",
        port: int = 0,
    ):
        _check_repository(repository)
        if api_prefix and (not api_prefix.startswith("/") or api_prefix.endswith("/")):
            raise ValueError(f"invalid api_prefix {api_prefix!r}: expected a form like '/api/v3'")
        self.repository = repository
        self.repository_id = repository_id
        self.token = token
        self.rate_limit = rate_limit
        self.reset_after_s = reset_after_s
        self.latency_s = latency_s
        self.api_prefix = api_prefix
        self.port = port
        self.requests: list[RecordedRequest] = []

        self._lock = threading.Lock()
        self._repositories = {repository.lower(): (repository, repository_id)}
        self._items: dict[int, ItemMeta] = {}
        self._deleted: dict[int, int] = {}
        self._moved_from: dict[int, set[str]] = collections.defaultdict(set)
        self._version = 0
        self._indexes: dict[tuple, tuple[int, list[tuple], list[ItemMeta]]] = {}
        self._faults: list[_Fault] = []
        self._budgets = {
            "user": _Budget(rate_limit, rate_limit, 0.0, reset_after_s),
            "anonymous": _Budget(ANONYMOUS_RATE_LIMIT, ANONYMOUS_RATE_LIMIT, 0.0, reset_after_s),
        }
        self._conversations: dict[tuple[str, int], _Conversation] = {}
        self._next_comment_id = 900_000_001
        self._route_counts: collections.Counter[str] = collections.Counter()
        self._status_counts: collections.Counter[str] = collections.Counter()
        self._connections: set[socket.socket] = set()
        self._stopping = False
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self._root_quoted = b""
        self._server_templates: tuple[tuple[bytes | str, ...], ...] = ()

        for item in items or []:
            meta = item if isinstance(item, ItemMeta) else _meta_from_item(item, repository)
            self._register_repository(meta.repository)
            self._items[meta.number] = meta

    # -- lifecycle --------------------------------------------------------

    @property
    def base_url(self) -> str:
        """API root, such as http://127.0.0.1:PORT/api/v3, known once start() has bound the port."""
        if self._base_url is None:
            raise RuntimeError("FakeGitHub has no base_url yet: call start() first")
        return self._base_url

    def start(self) -> FakeGitHub:
        """Bind a free port (or `port`) on 127.0.0.1 and serve from a background thread."""
        if self._httpd is not None:
            raise RuntimeError(f"FakeGitHub is already serving at {self._base_url}")
        self._stopping = False
        self._httpd = _HttpServer(("127.0.0.1", self.port), _RequestHandler)
        self._httpd.fake = self
        port = self._httpd.server_address[1]
        self._base_url = f"http://127.0.0.1:{port}{self.api_prefix}"
        self._root_quoted = f'"{self._base_url}'.encode()
        if any(meta.template is not None for meta in self._items.values()):
            self._server_templates = tuple(
                self._specialize(template.parts) for template in _templates()
            )
        self.reset_rate_limit()

        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-github-{port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("fake GitHub serving %d items at %s", len(self._items), self._base_url)
        return self

    def stop(self) -> None:
        """Stop serving, close open keep-alive connections and join every server thread."""
        if self._httpd is None:
            return
        with self._lock:
            self._stopping = True
        self._httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        self._thread.join()
        self._httpd = None
        self._thread = None
        logger.info("fake GitHub stopped after %d requests", len(self.requests))

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _track_connection(self, connection: socket.socket, open_: bool) -> None:
        """Track open connections, so stop() can end idle keep-alive ones and join their threads."""
        with self._lock:
            if not open_:
                self._connections.discard(connection)
                return
            self._connections.add(connection)
            stopping = self._stopping
        if stopping:
            # A connection accepted while stop() runs would otherwise keep its thread waiting.
            connection.shutdown(socket.SHUT_RDWR)

    # -- test controls ----------------------------------------------------

    def count(self, path_contains: str = "", status: int | None = None) -> int:
        """Count recorded requests whose path contains `path_contains` (and had `status`)."""
        return sum(
            1
            for request in list(self.requests)
            if path_contains in request.path and (status is None or request.status == status)
        )

    def inject(
        self,
        status: int,
        body: dict | None = None,
        headers: dict | None = None,
        times: int = 1,
        path_contains: str = "/issues",
        method: str | None = None,
        after: bool = False,
    ) -> None:
        """Send a fault in place of the next `times` responses whose path contains `path_contains`.

        Status 0 closes the connection without a response. `method` limits the fault to one
        HTTP method. With `after`, the request is carried out first and only its response is
        replaced, as when a proxy fails after GitHub stored a comment.
        """
        if status != 0 and not 100 <= status <= 599:
            raise ValueError(f"invalid status {status}: expected 0 or an HTTP status")
        if times < 1:
            raise ValueError(f"invalid times {times}: expected 1 or more")
        with self._lock:
            self._faults.append(_Fault(status, body, dict(headers or {}), times, path_contains, method, after))

    def add_comment(self, number: int, body: str, user: dict, repository: str | None = None) -> dict:
        """Add a comment by ``user`` (a dict with ``login``) to an issue, as a person or the bot would."""
        full_name = repository or self.repository
        owner, name = full_name.split("/")
        _, conversation = self._conversation(owner, name, number)
        with self._lock:
            comment_id = self._next_comment_id
            self._next_comment_id += 1
            now = _format_time(time.time())
            comment = self._comment_json(full_name, number, comment_id, body, user, now, now)
            conversation.comments[comment_id] = comment
            return dict(comment)

    def comments(self, number: int, repository: str | None = None) -> list[dict]:
        """Return the comments an issue has now, oldest first."""
        owner, name = (repository or self.repository).split("/")
        _, conversation = self._conversation(owner, name, number)
        with self._lock:
            return [dict(comment) for _, comment in sorted(conversation.comments.items())]

    def labels(self, number: int, repository: str | None = None) -> list[str]:
        """The label names an issue carries now."""
        owner, name = (repository or self.repository).split("/")
        _, conversation = self._conversation(owner, name, number)
        with self._lock:
            return list(conversation.labels)

    def set_labels(self, number: int, labels: list[str], repository: str | None = None) -> None:
        """Replace an issue's labels, as a person editing them on GitHub would."""
        owner, name = (repository or self.repository).split("/")
        _, conversation = self._conversation(owner, name, number)
        with self._lock:
            conversation.labels = list(labels)

    def writes(self) -> list[RecordedRequest]:
        """The POST, PATCH and DELETE requests received, in order, with their bodies."""
        return [request for request in list(self.requests) if request.method in WRITE_METHODS]

    def upsert_item(self, item: dict) -> None:
        """Add an issue object or replace the one with its number. The caller sets updated_at."""
        meta = _meta_from_item(item, self.repository)
        with self._lock:
            self._register_repository(meta.repository)
            self._items[meta.number] = meta
            self._deleted.pop(meta.number, None)
            self._version += 1

    def delete_item(self, number: int, status: int = 404) -> None:
        """Drop an item from lists. Its single GET then returns `status` (404 or 410)."""
        if status not in (404, 410):
            raise ValueError(f"invalid status {status}: a deleted issue returns 404 or 410")
        with self._lock:
            self._items.pop(number, None)
            self._deleted[number] = status
            self._version += 1

    def transfer_item(self, number: int, new_repository: str) -> None:
        """Move an item to `new_repository`, whose URLs and lists then hold it."""
        _check_repository(new_repository)
        with self._lock:
            meta = self._items.get(number)
            if meta is None:
                raise KeyError(f"issue {number} not found on the fake server")
            self._register_repository(new_repository)
            moved = dataclasses.replace(meta, repository=new_repository)
            if meta.data is not None:
                item = _move_repository_urls(json.loads(meta.data), meta.repository, new_repository)
                item.setdefault("repository_url", f"{GITHUB_API_ROOT}/repos/{new_repository}")
                moved = dataclasses.replace(moved, data=_json_bytes(item))
            self._items[number] = moved
            self._moved_from[number].add(meta.repository)
            self._version += 1

    def exhaust_rate_limit(self, reset_in_s: float) -> None:
        """Set every budget to 0 remaining until `reset_in_s` seconds from now."""
        with self._lock:
            for budget in self._budgets.values():
                budget.remaining = 0
                budget.reset_at = time.time() + reset_in_s

    def reset_rate_limit(self) -> None:
        """Refill every budget and start a new window of reset_after_s."""
        with self._lock:
            for budget in self._budgets.values():
                budget.remaining = budget.limit
                budget.reset_at = time.time() + budget.window_s

    def item_bytes(self, number: int) -> bytes:
        """Return the JSON bytes the server sends for issue `number`."""
        with self._lock:
            meta = self._items[number]
        return self._render(meta)

    def item(self, number: int) -> dict:
        return json.loads(self.item_bytes(number))

    def stats(self) -> dict:
        with self._lock:
            return {
                "requests": len(self.requests),
                "by_route": dict(self._route_counts),
                "status_counts": dict(self._status_counts),
            }

    # -- internals --------------------------------------------------------

    def _register_repository(self, repository: str) -> None:
        if repository.lower() not in self._repositories:
            repository_id = self.repository_id + len(self._repositories)
            self._repositories[repository.lower()] = (repository, repository_id)

    def _specialize(self, parts: tuple[bytes | str, ...]) -> tuple[bytes | str, ...]:
        """Point a template's api.github.com URLs at this server."""
        github_root = f'"{GITHUB_API_ROOT}'.encode()
        return tuple(
            part.replace(github_root, self._root_quoted) if isinstance(part, bytes) else part
            for part in parts
        )

    def _render(self, meta: ItemMeta) -> bytes:
        if meta.template is not None:
            return _render_template(self._server_templates[meta.template], meta)
        return meta.data.replace(f'"{GITHUB_API_ROOT}'.encode(), self._root_quoted)

    def _sorted_index(
        self, repository: str, state: str, sort: str
    ) -> tuple[list[tuple], list[ItemMeta]]:
        """Return the repository's items in ascending sort order, rebuilt after each edit."""
        with self._lock:
            cached = self._indexes.get((repository, state, sort))
            if cached is not None and cached[0] == self._version:
                return cached[1], cached[2]
            metas = [
                meta
                for meta in self._items.values()
                if meta.repository == repository and (state == "all" or meta.state == state)
            ]
            metas.sort(key=lambda meta: _sort_key(meta, sort))
            keys = [_sort_key(meta, sort) for meta in metas]
            self._indexes[(repository, state, sort)] = (self._version, keys, metas)
            return keys, metas

    def _handle(self, method: str, target: str, headers: RequestHeaders, body: bytes = b"") -> _Response:
        split = urlsplit(target)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        if method == "GET" and path in (STATS_PATH, self.api_prefix + STATS_PATH):
            return self._json_response(200, self.stats())

        if self.latency_s:
            time.sleep(self.latency_s)
        response = self._respond(method, path, split.query, query, headers, body)
        status = 0 if response.drop_connection else response.status
        with self._lock:
            recorded = RecordedRequest(method, path, query, headers, status, response.route, body)
            self.requests.append(recorded)
            self._route_counts[response.route] += 1
            self._status_counts[str(status)] += 1
        return response

    def _respond(
        self,
        method: str,
        path: str,
        raw_query: str,
        query: dict[str, list[str]],
        headers: RequestHeaders,
        body: bytes = b"",
    ) -> _Response:
        if self.api_prefix:
            if path != self.api_prefix and not path.startswith(self.api_prefix + "/"):
                return self._login_redirect()
            route_path = path[len(self.api_prefix):] or "/"
        else:
            route_path = path

        identity = self._identify(headers.get("Authorization"))
        if identity is None:
            error = _ApiError(401, _error_body("Bad credentials", 401))
            return self._error_response(error, self._budgets["anonymous"], route="unauthorized")
        budget = self._budgets[identity]
        route, handler, arguments = self._match_route(method, route_path)

        fault = self._take_fault(method, path)
        if fault is not None and not fault.after:
            return self._fault_response(fault, budget, route)

        counted = route != "GET /rate_limit"
        with self._lock:
            budget.refresh(time.time())
            exhausted = counted and budget.remaining == 0
            if counted and not exhausted:
                budget.remaining -= 1
        if exhausted:
            logger.debug("rate limit exhausted for %s: %s %s returns 403", identity, method, path)
            return self._error_response(self._rate_limit_error(identity), budget, route)

        try:
            if method in WRITE_METHODS and method != "DELETE":
                arguments["payload"] = _parse_payload(body)
            status, body, extra_headers = handler(identity, query, raw_query, **arguments)
        except _ApiError as error:
            return self._error_response(error, budget, route)
        if fault is not None:
            return self._fault_response(fault, budget, route)

        response = self._json_response(status, body, extra_headers, route)
        if status == 200 and _etag_matches(headers.get("If-None-Match"), response.headers["ETag"]):
            # GitHub's REST documentation: a 304 response does not count against the rate limit.
            response = _Response(304, headers={"ETag": response.headers["ETag"]}, route=route)
            if counted:
                with self._lock:
                    budget.remaining = min(budget.remaining + 1, budget.limit)
        with self._lock:
            response.headers.update(budget.headers())
        return response

    def _identify(self, authorization: str | None) -> str | None:
        """Return "user" for the right token, "anonymous" without one, None for a wrong one."""
        if not authorization:
            return "anonymous"
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() in ("token", "bearer") and credential.strip() == self.token:
            return "user"
        return None

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains in path and fault.method in (None, method):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _match_route(self, method: str, path: str):
        """Return the route label, the handler and its path arguments for a request."""
        for route_method, label, pattern, handler_name in _ROUTES:
            if route_method != method:
                continue
            match = pattern.fullmatch(path)
            if match:
                return label, getattr(self, handler_name), match.groupdict()
        return f"{method} (unknown route)", self._unknown_route, {}

    def _resolve_repository(self, owner=None, name=None, repository_id=None) -> tuple[str, int]:
        with self._lock:
            if repository_id is not None:
                for full_name, known_id in self._repositories.values():
                    if known_id == int(repository_id):
                        return full_name, known_id
                raise _not_found()
            found = self._repositories.get(f"{owner}/{name}".lower())
        if found is None:
            raise _not_found()
        return found

    # -- route handlers: each returns (status, body, extra headers) -------

    def _unknown_route(self, identity, query, raw_query, payload=None):
        raise _not_found()

    def _get_rate_limit(self, identity, query, raw_query):
        with self._lock:
            rate = self._budgets[identity].as_json()
        return 200, {"resources": {"core": rate}, "rate": rate}, {}

    def _get_user(self, identity, query, raw_query):
        if identity != "user":
            raise _ApiError(401, _error_body("Requires authentication", 401))
        return 200, BOT_USER, {}

    def _get_repository(
        self, identity, query, raw_query, owner=None, name=None, repository_id=None
    ):
        full_name, found_id = self._resolve_repository(owner, name, repository_id)
        owner_login, repository_name = full_name.split("/")
        with self._lock:
            open_count = sum(
                1
                for meta in self._items.values()
                if meta.repository == full_name and meta.state == "open"
            )
        body = {
            "id": found_id,
            "node_id": f"R_fake{found_id}",
            "name": repository_name,
            "full_name": full_name,
            "owner": {"login": owner_login, "id": found_id + 1, "type": "Organization"},
            "private": False,
            "html_url": f"https://github.com/{full_name}",
            "url": f"{self.base_url}/repos/{full_name}",
            "issues_url": f"{self.base_url}/repos/{full_name}/issues{{/number}}",
            "has_issues": True,
            "default_branch": "master",
            "open_issues_count": open_count,
        }
        return 200, body, {}

    def _list_issues(self, identity, query, raw_query, owner=None, name=None, repository_id=None):
        full_name, found_id = self._resolve_repository(owner, name, repository_id)
        list_query = _parse_list_query(query)
        keys, metas = self._sorted_index(full_name, list_query.state, list_query.sort)
        page, has_more = _select_page(keys, metas, list_query)
        body = b"[" + b",".join(self._render(meta) for meta in page) + b"]"

        headers = {}
        if has_more:
            last_key = _sort_key(page[-1], list_query.sort)
            cursor = _encode_cursor(list_query.sort, list_query.direction, last_key)
            pairs = [
                (key, value)
                for key, value in parse_qsl(raw_query, keep_blank_values=True)
                if key not in ("page", "after", "before")
            ]
            pairs.append(("after", cursor))
            next_url = f"{self.base_url}/repositories/{found_id}/issues?{urlencode(pairs)}"
            # Cursor pages carry no rel="last" link, because a cursor cannot jump to the end.
            headers["Link"] = f'<{next_url}>; rel="next"'
        return 200, body, headers

    def _get_issue(
        self, identity, query, raw_query, number, owner=None, name=None, repository_id=None
    ):
        full_name, _ = self._resolve_repository(owner, name, repository_id)
        number = int(number)
        with self._lock:
            meta = self._items.get(number)
            deleted_status = self._deleted.get(number)
            moved_away = full_name in self._moved_from.get(number, ())
        if meta is None and deleted_status == 410:
            raise _ApiError(410, _error_body("This issue was deleted", 410))
        if meta is None:
            raise _not_found()
        if meta.repository != full_name:
            if not moved_away:
                raise _not_found()
            location = f"{self.base_url}/repos/{meta.repository}/issues/{number}"
            body = {**_error_body("Moved Permanently", 301), "url": location}
            return 301, body, {"Location": location}
        return 200, self._render(meta), {}

    # -- comment and label routes ------------------------------------------

    def _conversation(self, owner, name, number) -> tuple[str, _Conversation]:
        """Return an existing issue's comments and labels; 404 for an issue the server lacks."""
        full_name, _ = self._resolve_repository(owner, name)
        number = int(number)
        with self._lock:
            meta = self._items.get(number)
            if meta is None or meta.repository != full_name:
                raise _not_found()
            key = (full_name, number)
            if key not in self._conversations:
                item = json.loads(self._render(meta))
                names = [label["name"] for label in item.get("labels") or [] if isinstance(label, dict)]
                self._conversations[key] = _Conversation(labels=names)
            return full_name, self._conversations[key]

    def _comment_json(self, full_name: str, number: int, comment_id: int, body: str, user: dict,
                      created_at: str, updated_at: str) -> dict:
        return {
            "id": comment_id,
            "node_id": f"IC_fake{comment_id}",
            "url": f"{self.base_url}/repos/{full_name}/issues/comments/{comment_id}",
            "html_url": f"https://github.com/{full_name}/pull/{number}#issuecomment-{comment_id}",
            "issue_url": f"{self.base_url}/repos/{full_name}/issues/{number}",
            "body": body,
            "user": dict(user),
            "created_at": created_at,
            "updated_at": updated_at,
            "author_association": "NONE",
        }

    def _label_json(self, full_name: str, label: str) -> dict:
        return {"name": label, "url": f"{self.base_url}/repos/{full_name}/labels/{label}",
                "color": "ededed", "default": False, "description": None}

    def _find_comment(self, full_name: str, comment_id) -> tuple[_Conversation, dict]:
        with self._lock:
            for (repository, _), conversation in self._conversations.items():
                comment = conversation.comments.get(int(comment_id))
                if repository == full_name and comment is not None:
                    return conversation, comment
        raise _not_found()

    def _list_comments(self, identity, query, raw_query, owner, name, number):
        full_name, conversation = self._conversation(owner, name, number)
        per_page = min(max(_int_or_default(query.get("per_page"), DEFAULT_PER_PAGE), 1), MAX_PER_PAGE)
        page = max(_int_or_default(query.get("page"), 1), 1)
        with self._lock:
            comments = sorted(conversation.comments.values(), key=lambda comment: comment["id"])
        chosen = comments[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(comments):
            pairs = [(key, value) for key, value in parse_qsl(raw_query) if key != "page"]
            pairs.append(("page", str(page + 1)))
            headers["Link"] = f'<{self.base_url}/repos/{full_name}/issues/{number}/comments?{urlencode(pairs)}>; rel="next"'
        return 200, chosen, headers

    def _create_comment(self, identity, query, raw_query, owner, name, number, payload):
        full_name, conversation = self._conversation(owner, name, number)
        body = _required_string(payload, "body")
        comment = self.add_comment(int(number), body, BOT_USER, repository=full_name)
        return 201, comment, {}

    def _edit_comment(self, identity, query, raw_query, owner, name, comment_id, payload):
        full_name, _ = self._resolve_repository(owner, name)
        body = _required_string(payload, "body")
        _, comment = self._find_comment(full_name, comment_id)
        if comment["user"]["login"] != BOT_USER["login"]:
            raise _ApiError(403, _error_body("Must have admin rights to Repository.", 403))
        with self._lock:
            comment["body"] = body
            comment["updated_at"] = _format_time(time.time())
            return 200, dict(comment), {}

    def _delete_comment(self, identity, query, raw_query, owner, name, comment_id):
        full_name, _ = self._resolve_repository(owner, name)
        conversation, comment = self._find_comment(full_name, comment_id)
        with self._lock:
            conversation.comments.pop(comment["id"], None)
        return 204, b"", {}

    def _list_labels(self, identity, query, raw_query, owner, name, number):
        full_name, conversation = self._conversation(owner, name, number)
        with self._lock:
            return 200, [self._label_json(full_name, label) for label in conversation.labels], {}

    def _add_labels(self, identity, query, raw_query, owner, name, number, payload):
        full_name, conversation = self._conversation(owner, name, number)
        names = payload.get("labels") if isinstance(payload, dict) else payload
        if not isinstance(names, list) or not all(isinstance(label, str) for label in names):
            raise _validation_failed("labels")
        with self._lock:
            for label in names:
                if label not in conversation.labels:
                    conversation.labels.append(label)
            return 200, [self._label_json(full_name, label) for label in conversation.labels], {}

    def _remove_label(self, identity, query, raw_query, owner, name, number, label):
        full_name, conversation = self._conversation(owner, name, number)
        label = unquote(label)
        with self._lock:
            if label not in conversation.labels:
                raise _ApiError(404, _error_body("Label does not exist", 404))
            conversation.labels.remove(label)
            return 200, [self._label_json(full_name, name_) for name_ in conversation.labels], {}

    # -- responses --------------------------------------------------------

    def _json_response(
        self, status: int, body, extra_headers: dict | None = None, route: str = ""
    ) -> _Response:
        data = body if isinstance(body, bytes) else _json_bytes(body)
        headers = dict(extra_headers or {})
        if status == 200:
            headers["ETag"] = f'W/"{hashlib.sha256(data).hexdigest()}"'
        return _Response(status, data, headers, route)

    def _error_response(self, error: _ApiError, budget: _Budget, route: str) -> _Response:
        with self._lock:
            headers = budget.headers()
        headers.update(error.headers)
        return _Response(error.status, _json_bytes(error.body), headers, route)

    def _rate_limit_error(self, identity: str) -> _ApiError:
        if identity == "user":
            message = (
                f"API rate limit exceeded for user ID {BOT_USER['id']}. If you reach out to GitHub "
                "Support for help, please include the request ID and timestamp."
            )
        else:
            message = (
                "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated "
                "requests get a higher rate limit. Check out the documentation for more details.)"
            )
        return _ApiError(403, _error_body(message, 403, RATE_LIMIT_DOCUMENTATION_URL))

    def _fault_response(self, fault: _Fault, budget: _Budget, route: str) -> _Response:
        logger.debug("injected fault %d for %s", fault.status, route)
        if fault.status == 0:
            return _Response(0, route=route, drop_connection=True)
        body = fault.body
        if body is None:
            body = _error_body(HTTPStatus(fault.status).phrase, fault.status)
        error = _ApiError(fault.status, body, fault.headers)
        return self._error_response(error, budget, route)

    def _login_redirect(self) -> _Response:
        """Redirect a path outside the API prefix to the login page, as GitHub Enterprise does."""
        body = b'<html><body>You are being <a href="/login">redirected</a>.</body></html>'
        return _Response(
            302,
            body,
            {"Location": "/login"},
            route="redirect to /login",
            content_type="text/html; charset=utf-8",
        )


# ---------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m k8s_analysis_tests.fake_github",
        description="Serve generated kubernetes issues through a fake GitHub API on 127.0.0.1.",
    )
    add = parser.add_argument
    add("--items", type=int, default=1000, help="number of issues to serve")
    add("--latency-ms", type=float, default=0.0, help="delay before each response, in ms")
    add("--rate-limit", type=int, default=5000, help="requests per window for the token")
    add("--reset-after-s", type=float, default=3600.0, help="rate-limit window, in seconds")
    add("--port", type=int, default=0, help="port on 127.0.0.1, or 0 for a free one")
    add("--token", default="test-token", help="the token the server accepts")
    add("--api-prefix", default="", help="path prefix of every route, such as /api/v3")
    add("--seed", type=int, default=0, help="seed for the order of source objects")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    signal.signal(signal.SIGINT, lambda *_: stop_requested.set())

    items = make_item_index(args.items, seed=args.seed)
    server = FakeGitHub(
        items,
        token=args.token,
        rate_limit=args.rate_limit,
        reset_after_s=args.reset_after_s,
        latency_s=args.latency_ms / 1000,
        api_prefix=args.api_prefix,
        port=args.port,
    )
    with server:
        print(f"READY {server.base_url}", flush=True)
        while not stop_requested.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
