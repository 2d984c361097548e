"""Request bodies to texts, and predictions to response bodies, for the V1 and V2 protocols.

V1 is KServe's: ``{"text": "..."}`` (the original tool's form) or ``{"instances": [...]}``.
V2 is the Open Inference Protocol: one ``BYTES`` input tensor of texts. Every rule a body
breaks becomes a ``RequestError`` with a message that names the field and the fix. A null text
counts as an empty one, which the model flags as low information.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

V2_INPUT = "text"
V2_OUTPUTS = {"probability": "FP32", "kind_bug": "BOOL", "low_information": "BOOL"}


class RequestError(Exception):
    """A request the server cannot serve as sent; ``status`` is the HTTP status to return."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class PredictionRequest:
    texts: list[str]
    sigs: list[list[str] | None] | None = None
    areas: list[list[str] | None] | None = None
    explain: bool = False
    single: bool = False
    """True for the original ``{"text": ...}`` form, whose response is ``{"result": p}``."""
    request_id: str | None = None
    outputs: list[str] = field(default_factory=lambda: list(V2_OUTPUTS))


@dataclass
class Predictions:
    probabilities: list[float]
    kind_bug: list[bool]
    low_information: list[bool]
    threshold: float
    version: str
    explanations: list[dict] | None = None


def parse_json(body: bytes) -> object:
    if not body.strip():
        raise RequestError(400, "the request body is empty; send a JSON object")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "the request body is not UTF-8 text; send JSON encoded as UTF-8") from None
    except json.JSONDecodeError as error:
        raise RequestError(400, f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None


def type_name(value: object) -> str:
    """Name a parsed JSON value's type the way JSON does (string, number, list, object, null)."""
    names = {str: "a string", bool: "a boolean", int: "a number", float: "a number", list: "a list",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def parse_v1(body: bytes) -> PredictionRequest:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise RequestError(400, f"the body must be a JSON object with \"text\" or \"instances\", not {type_name(data)}")
    explain = parse_explain(data.get("explain", False), "\"explain\"")
    if "text" in data and "instances" in data:
        raise RequestError(400, "send either \"text\" (one text) or \"instances\" (a list), not both")

    if "text" in data:
        return PredictionRequest([text_value(data["text"], "\"text\"", objects=False)], explain=explain,
                                 single=True)
    if "instances" not in data:
        # A few keys, shortened: they come from the client and end up in the log.
        keys = ", ".join(f'"{key[:40]}"' for key in list(data)[:5]) or "none"
        raise RequestError(400, f"expected \"text\" (one text) or \"instances\" (a list of texts); got keys: {keys}")
    instances = data["instances"]
    if isinstance(instances, str):
        raise RequestError(400, "\"instances\" must be a list of texts, not one string; wrap it in a list, "
                                "or send {\"text\": ...}")
    if not isinstance(instances, list):
        raise RequestError(400, f"\"instances\" must be a list of texts, not {type_name(instances)}")
    if not instances:
        raise RequestError(400, "\"instances\" is an empty list; send at least one text")

    request = PredictionRequest([], explain=explain)
    labels = any(isinstance(item, dict) for item in instances)
    if labels:
        request.sigs, request.areas = [], []
    for index, item in enumerate(instances):
        where = f"instances[{index}]"
        if isinstance(item, dict):
            if "text" not in item:
                raise RequestError(400, f"{where} is an object without \"text\"; give each object a \"text\" "
                                        "(null for an empty one)")
            request.texts.append(text_value(item["text"], f"{where}.text", objects=False))
            request.sigs.append(label_list(item.get("sigs"), f"{where}.sigs"))
            request.areas.append(label_list(item.get("areas"), f"{where}.areas"))
            continue
        request.texts.append(text_value(item, where))
        if labels:
            request.sigs.append(None)
            request.areas.append(None)
    return request


def text_value(value: object, where: str, objects: bool = True) -> str:
    """Return a text field's string; ``objects`` is True where an object with "text" is allowed too."""
    if value is None:
        return ""
    if not isinstance(value, str):
        allowed = "a string (or an object with \"text\")" if objects else "a string"
        raise RequestError(400, f"{where} must be {allowed}, not {type_name(value)}")
    return value


def label_list(value: object, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RequestError(400, f"{where} must be a list of label names such as [\"node\"], not {type_name(value)}")
    return [name.split("/", 1)[-1] for name in value]


def parse_explain(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError(400, f"{where} must be true or false, not {type_name(value)}")
    return value


def parse_v2(body: bytes) -> PredictionRequest:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise RequestError(400, f"the body must be a JSON object with \"inputs\", not {type_name(data)}")
    if "explain" in data:
        raise RequestError(400, "in V2, \"explain\" goes in \"parameters\": {\"parameters\": {\"explain\": true}}")
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(400, f"\"inputs\" must be a non-empty list of tensors: the one named "
                                f"\"{V2_INPUT}\", or a single BYTES tensor of any name")
    tensor = next((item for item in inputs if isinstance(item, dict) and item.get("name") == V2_INPUT), None)
    if tensor is None:
        if len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise RequestError(400, f"no input tensor named \"{V2_INPUT}\" among {len(inputs)} inputs")
        tensor = inputs[0]

    name = tensor.get("name", V2_INPUT)
    if tensor.get("datatype") != "BYTES":
        raise RequestError(400, f"input \"{name}\" has datatype {tensor.get('datatype')!r}; texts go in a "
                                "\"BYTES\" tensor")
    texts = v2_texts(tensor, name)

    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise RequestError(400, f"\"parameters\" must be an object, not {type_name(parameters)}")
    request = PredictionRequest(texts, explain=parse_explain(parameters.get("explain", False),
                                                              "parameters.explain"))
    request_id = data.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, f"\"id\" must be a string, not {type_name(request_id)}")
    request.request_id = request_id
    request.outputs = v2_requested_outputs(data.get("outputs"))
    return request


def v2_texts(tensor: dict, name: str) -> list[str]:
    data = tensor.get("data")
    if not isinstance(data, list):
        raise RequestError(400, f"input \"{name}\" must have \"data\", a list of strings")
    # The protocol allows row-major nested lists; [[a], [b]] and [a, b] carry the same texts.
    flat = [item for row in data for item in row] if data and all(isinstance(row, list) for row in data) else data
    if not flat:
        raise RequestError(400, f"input \"{name}\" has no texts; send at least one")
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or not all(isinstance(size, int) and not isinstance(size, bool) for size in shape)
            or math.prod(shape) != len(flat)):
        count = f"{len(flat)} text{'' if len(flat) == 1 else 's'}"
        raise RequestError(400, f"input \"{name}\" has shape {shape!r} but {count}; use [{len(flat)}]")
    return [text_value(item, f"input \"{name}\" data[{index}]", objects=False) for index, item in enumerate(flat)]


def v2_requested_outputs(value: object) -> list[str]:
    if value is None:
        return list(V2_OUTPUTS)
    names = []
    if isinstance(value, list):
        names = [item.get("name") if isinstance(item, dict) else None for item in value]
    if not names:
        raise RequestError(400, "\"outputs\" must be a list of objects such as {\"name\": \"probability\"}")
    unknown = [name for name in names if name not in V2_OUTPUTS]
    if unknown:
        raise RequestError(400, f"unknown output {unknown[0]!r}; this model has {', '.join(V2_OUTPUTS)}")
    return names


def v1_response(request: PredictionRequest, predictions: Predictions) -> dict:
    if request.single:
        body = {"result": predictions.probabilities[0], "kind_bug": predictions.kind_bug[0],
                "low_information": predictions.low_information[0]}
        if predictions.explanations is not None:
            body["explanation"] = predictions.explanations[0]
    else:
        body = {"predictions": predictions.probabilities, "kind_bug": predictions.kind_bug,
                "low_information": predictions.low_information}
        if predictions.explanations is not None:
            body["explanations"] = predictions.explanations
    return {**body, "threshold": predictions.threshold, "model_version": predictions.version}


def v2_response(name: str, request: PredictionRequest, predictions: Predictions) -> dict:
    values = {"probability": predictions.probabilities, "kind_bug": predictions.kind_bug,
              "low_information": predictions.low_information}
    count = len(predictions.probabilities)
    body = {
        "model_name": name,
        "model_version": predictions.version,
        "outputs": [{"name": output, "shape": [count], "datatype": V2_OUTPUTS[output], "data": values[output]}
                    for output in request.outputs],
        "parameters": {"threshold": predictions.threshold},
    }
    if request.request_id is not None:
        body["id"] = request.request_id
    if predictions.explanations is not None:
        body["parameters"]["explanations"] = predictions.explanations
    return body


def v2_metadata(name: str, version: str) -> dict:
    return {
        "name": name,
        "versions": [version],
        "platform": "k8s-analysis-numpy",
        "inputs": [{"name": V2_INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [{"name": output, "datatype": datatype, "shape": [-1]} for output, datatype in V2_OUTPUTS.items()],
    }
