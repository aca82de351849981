"""Turning pydantic's validation errors into :class:`ConfigProblem` lines.

Pydantic's own text is not used for two reasons: ``str(ValidationError)`` shows the input
(a secret, possibly), and its wording ("Input should be a valid integer") does not say
which key or variable to fix. Each error becomes ``path: message`` where the path is the
environment variable when the value came from one.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .environment import ENVIRONMENT_VARIABLES, variable_for_path
from .errors import ConfigProblem
from .messages import describe_type, show_value
from .paths import KeyPath, format_path
from .value_types import CUSTOM_ERROR_TYPE

__all__ = ["problems_from_validation_error"]

# Sections that only the environment fills: their errors are named by variable, and their
# input is never shown.
_ENVIRONMENT_ONLY_SECTIONS = frozenset({"credentials"})
_SECRET_KEYS = {
    variable.config_path[-1]: variable.name
    for variable in ENVIRONMENT_VARIABLES
    if variable.secret and variable.config_path
}


def problems_from_validation_error(
    error: ValidationError,
    *,
    root: type[BaseModel],
    origins: Mapping[KeyPath, str],
    skip: Collection[KeyPath] = (),
) -> Iterator[ConfigProblem]:
    """Yield one problem per pydantic error.

    ``origins`` maps key paths to the variable that set them; ``skip`` lists paths that
    already have a problem (a failed ``${VAR}`` expansion) and need no second one.
    """
    for details in error.errors(include_url=False):
        location: KeyPath = tuple(details["loc"])
        if any(location[: len(path)] == path for path in skip):
            continue
        yield ConfigProblem(_label(location, origins), _message(details, location, root))


def _label(location: KeyPath, origins: Mapping[KeyPath, str]) -> str:
    for path, variable in origins.items():
        if location[: len(path)] == path:
            return variable
    if location and location[0] in _ENVIRONMENT_ONLY_SECTIONS:
        variable = variable_for_path(location[:2])
        if variable is not None:
            return variable.name
    return format_path(location)


def _message(details: ErrorDetails, location: KeyPath, root: type[BaseModel]) -> str:
    kind = details["type"]
    secret = bool(location) and location[0] in _ENVIRONMENT_ONLY_SECTIONS
    got = "(not shown)" if secret else show_value(details.get("input"))
    kind_of_input = "(not shown)" if secret else describe_type(details.get("input"))
    if kind == CUSTOM_ERROR_TYPE:
        return details["msg"]
    if kind == "missing":
        return _missing_message(location)
    if kind == "extra_forbidden":
        return _unknown_key_message(location, root)
    if kind == "literal_error":
        expected = details.get("ctx", {}).get("expected", "one of the listed values")
        return f"expected {expected}, got {got}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of keys, got {kind_of_input}"
    if kind in ("list_type", "tuple_type", "iterable_type"):
        return f"expected a list, got {kind_of_input}"
    if kind == "string_type":
        return f"expected a string, got {kind_of_input}"
    # pydantic's short message never contains the input (only str(error) does).
    return details["msg"]


def _missing_message(location: KeyPath) -> str:
    variable = variable_for_path(location)
    if variable is None:
        return "required"
    return f"required: set {variable.name} or {format_path(location)}"


def _unknown_key_message(location: KeyPath, root: type[BaseModel]) -> str:
    key = location[-1]
    if key in _SECRET_KEYS:
        return (
            f"unknown key; secrets are not read from the config file: "
            f"set {_SECRET_KEYS[str(key)]} (from a Kubernetes Secret)"
        )
    model = _model_at(root, location[:-1])
    if model is None or not isinstance(key, str):
        return "unknown key"
    allowed = [name for name in model.model_fields if name not in _ENVIRONMENT_ONLY_SECTIONS]
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean '{close[0]}'?"
    return f"unknown key; expected one of: {', '.join(allowed)}"


def _model_at(root: type[BaseModel], location: KeyPath) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``location`` (for suggestions)."""
    model: type[BaseModel] = root
    for part in location:
        if isinstance(part, int):
            continue  # a list index: the element type was unwrapped with the list field
        field = model.model_fields.get(part)
        if field is None:
            return None
        nested = _nested_model(field.annotation)
        if nested is None:
            return None
        model = nested
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (tuple, list, typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            nested = _nested_model(argument)
            if nested is not None:
                return nested
    return None
