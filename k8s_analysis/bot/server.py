"""Build the bot from its options and run it with uvicorn in one process.

One process on purpose: the per-item ordering, the write limits and the SQLite state are
shared in memory. A single bot handles kubernetes/kubernetes's rate of events (a few a
second at peak) with room to spare, because every GitHub call runs after the response.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from upath import UPath

from k8s_analysis.bot.app import BotService, BotSettings, create_app
from k8s_analysis.bot.deliveries import DeliveryStore
from k8s_analysis.bot.github import GitHubCallError, GitHubWriter, WriteLimiter
from k8s_analysis.bot.handler import Handler
from k8s_analysis.bot.metrics import BotMetrics
from k8s_analysis.bot.predict import LocalPredictions, RemotePredictions
from k8s_analysis.bot.state import BotState
from k8s_analysis.paths import DataLayout
from k8s_analysis.serving.models import ModelStore

logger = logging.getLogger(__name__)

TOKEN_ENV = "GITHUB_TOKEN"
SECRET_ENV = "GITHUB_WEBHOOK_SECRET"


@dataclass
class BotOptions:
    host: str = "127.0.0.1"
    port: int = 8888
    api_url: str = "https://api.github.com"
    dry_run: bool = False
    insecure_no_signature: bool = False
    model_dir: Path | UPath | None = None
    """A version folder or link, or STORAGE/models/current in object storage; None means the layout's default."""
    predict_url: str | None = None
    bot_login: str | None = None
    writes_per_item_per_hour: int = 10
    writes_per_minute: int = 80
    reload_interval: float = 2.0
    shutdown_timeout_s: float = 30.0


def build_service(options: BotOptions, layout: DataLayout) -> BotService:
    """Check the options and the environment, read the bot's login, and assemble the service.

    Raises ValueError (bad options or environment) or RuntimeError (GitHub unreachable) with a
    message that names the fix. The token and the secret are never part of a message.
    """
    secret = os.environ.get(SECRET_ENV) or None
    token = os.environ.get(TOKEN_ENV) or None
    problems = []
    if secret is None and not options.insecure_no_signature:
        problems.append(f"the webhook secret in {SECRET_ENV} (the one set on the GitHub webhook; for local tests "
                        "only, --insecure-no-signature accepts unsigned deliveries)")
    if token is None and not options.dry_run:
        problems.append(f"a GitHub token in {TOKEN_ENV} with write access to issues and pull requests (--dry-run "
                        "works without one)")
    if token is None and options.dry_run and options.bot_login is None:
        problems.append(f"--bot-login NAME, because without {TOKEN_ENV} the bot cannot read its login from GET /user")
    if problems:
        raise ValueError("the bot needs " + ", and ".join(problems))
    if secret is not None and options.insecure_no_signature:
        logger.warning("--insecure-no-signature given, so %s is not used and no signature is checked", SECRET_ENV)
        secret = None
    if secret is None:
        logger.warning("signature checks are OFF: anyone who reaches this port can send events")

    windows = ((options.writes_per_minute, 60.0), (max(options.writes_per_minute * 6, 1), 3600.0))
    github = GitHubWriter(options.api_url, token, dry_run=options.dry_run, limiter=WriteLimiter(windows))
    login = options.bot_login
    try:
        if login is None:
            login = github.login()
        elif token is not None:
            github.check_token()
    except GitHubCallError as error:
        hint = "" if options.bot_login else (" (a GitHub App's installation token cannot read GET /user: give its "
                                             "login with --bot-login NAME[bot])")
        raise RuntimeError(f"{error}{hint}") from None
    metrics = BotMetrics()
    store = None
    if options.predict_url:
        predictions = RemotePredictions(options.predict_url)
    else:
        store = ModelStore(options.model_dir or layout.promoted_model, "kubernetes-analysis", metrics)
        predictions = LocalPredictions(store)
    # A dry run keeps its state apart and stores no feedback, so it never changes what a real
    # run remembers or what training reads.
    path = layout.bot_state_path.with_name("dry-run.sqlite") if options.dry_run else layout.bot_state_path
    state = BotState(path, feedback_path=None if options.dry_run else layout.label_feedback_path)
    handler = Handler(github, predictions, state, metrics, login, options.writes_per_item_per_hour)
    settings = BotSettings(secret=secret, bot_login=login, state_path=path, api_url=options.api_url,
                           reload_interval=options.reload_interval,
                           drain_timeout_s=options.shutdown_timeout_s)
    return BotService(settings, handler, DeliveryStore(path), metrics, store)


def run_bot(options: BotOptions, layout: DataLayout) -> None:
    import uvicorn

    service = build_service(options, layout)
    logger.info("bot starting on http://%s:%s (webhook at / and /hook)%s", options.host, options.port,
                ", dry run: no writes to GitHub" if options.dry_run else "")
    uvicorn.run(create_app(service), host=options.host, port=options.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=int(options.shutdown_timeout_s) + 5)
