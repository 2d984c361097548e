"""Prometheus metrics of the bot: the server's (requests, model) plus deliveries, writes and feedback."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from k8s_analysis.serving.metrics import ServerMetrics


class BotMetrics(ServerMetrics):
    """The prediction server's metrics and the bot's own, in one registry."""

    def __init__(self) -> None:
        super().__init__()
        registry = self.registry
        self.deliveries = Counter("k8s_analysis_bot_deliveries",
                                  "Webhook deliveries by event and outcome (queued, ignored, duplicate, rejected).",
                                  ["event", "outcome"], registry=registry)
        self.handled = Counter("k8s_analysis_bot_handled", "Queued decisions carried out, by result (done, failed).",
                               ["result"], registry=registry)
        self.pending = Gauge("k8s_analysis_bot_pending", "Decisions queued and not yet carried out.",
                             registry=registry)
        self.writes = Counter("k8s_analysis_bot_github_writes", "Comment and label writes sent to GitHub.",
                              registry=registry)
        self.label_changes = Counter("k8s_analysis_bot_label_changes", "kind/bug labels the bot added or removed.",
                                     ["change"], registry=registry)
        self.disagreements = Counter("k8s_analysis_bot_disagreements",
                                     "Predictions that disagree with a kind/bug label a person set.",
                                     registry=registry)
        self.feedback = Counter("k8s_analysis_bot_feedback", "Feedback rows stored, by action.", ["action"],
                                registry=registry)
        self.prediction_failures = Counter("k8s_analysis_bot_prediction_failures",
                                           "Predictions that could not be made.", registry=registry)
        self.budget_trips = Counter("k8s_analysis_bot_write_budget_trips",
                                    "Writes refused because an item spent its hourly write budget.",
                                    registry=registry)
