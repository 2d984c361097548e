"""The two sources of the bot's predictions: the promoted model in-process, or a prediction server's URL.

In-process, the bot keeps a ``ModelStore`` like the server's, so a newly promoted model is
picked up without a restart. Through a URL, it posts to the server's V1 predict route with
``"explain": true``.
"""

from __future__ import annotations

import logging

import requests

from k8s_analysis.bot.comment import Prediction
from k8s_analysis.model.explain import explain_texts
from k8s_analysis.serving.models import ModelStore

logger = logging.getLogger(__name__)

EXPLAINED_WORDS = 3


class PredictionError(RuntimeError):
    """No prediction could be made. The message gives the reason and contains no secret."""


class LocalPredictions:
    """Predict with the model the store serves."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    @property
    def ready(self) -> bool:
        return self.store.predictor is not None

    def describe(self) -> str:
        return f"model {self.store.version or '(none yet)'} from {self.store.model_dir}"

    def predict(self, text: str, sigs: list[str], areas: list[str]) -> Prediction:
        predictor = self.store.predictor
        if predictor is None:
            raise PredictionError(f"no model is loaded: {self.store.last_error or 'it is still loading'}")
        label_inputs = ([sigs], [areas]) if predictor.uses_labels else (None, None)
        probabilities, informative = predictor.score([text], *label_inputs)
        explanation = None
        try:
            explanation = explain_texts(predictor, [text], *label_inputs, top=EXPLAINED_WORDS)[0]
        except ValueError as error:
            # A note longer than explanations allow still gets its prediction.
            logger.info("no explanation: %s", error)
        return Prediction(probability=float(probabilities[0]), threshold=predictor.threshold,
                          version=predictor.version, low_information=not bool(informative[0]),
                          explanation=explanation)


class RemotePredictions:
    """Predict through a running ``k8s-analysis serve``: ``url`` is its model's V1 URL."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()

    @property
    def ready(self) -> bool:
        try:
            response = self._session.get(self.url, timeout=2.0)
        except requests.RequestException:
            return False
        return response.status_code == 200 and bool(response.json().get("ready"))

    def describe(self) -> str:
        return f"the prediction server at {self.url}"

    def predict(self, text: str, sigs: list[str], areas: list[str]) -> Prediction:
        body = {"instances": [{"text": text, "sigs": sigs, "areas": areas}], "explain": True}
        try:
            response = self._session.post(f"{self.url}:predict", json=body, timeout=self.timeout_s)
        except requests.RequestException as error:
            raise PredictionError(f"the prediction server at {self.url} did not respond: "
                                  f"{type(error).__name__}") from None
        if response.status_code != 200:
            try:
                detail = response.json().get("error", "")
            except ValueError:
                detail = response.text[:200]
            raise PredictionError(f"the prediction server returned {response.status_code}: {detail}")
        answer = response.json()
        explanations = answer.get("explanations") or [None]
        return Prediction(probability=float(answer["predictions"][0]), threshold=float(answer["threshold"]),
                          version=str(answer["model_version"]), low_information=bool(answer["low_information"][0]),
                          explanation=explanations[0])
