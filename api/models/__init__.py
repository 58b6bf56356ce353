"""Typed models of the HTTP API (issue 12), declared once with pydantic v2: one module per
resource (``channels.py``, ...), each holding that resource's request bodies and answer objects,
with the descriptions and examples of the OpenAPI document on their fields.

* Request bodies derive from :class:`RequestModel` (strict, unknown fields refused) or, where
  a key left out must stay absent rather than become ``None`` (PATCH bodies; a sub-workspace's
  ``node_limit``), are a ``TypedDict(total=False)`` carrying :data:`REQUEST_CONFIG`. Handlers
  validate them with :func:`validate`, which turns pydantic's errors into the one error
  envelope: 400 ``invalid_parameter`` with ``field`` named as before (see :func:`api_error`).
* Answers derive from :class:`ResponseModel`. They document the answer and are checked against
  the live server by ``tests/test_openapi.py``; handlers still encode plain dicts with
  ``api.errors.json_bytes`` (``benchmarks/bench_models.py``: building answers through models
  costs 2-4 times the encoding).
* :func:`component_schemas` emits the models' JSON Schemas for ``#/components/schemas``.

A check written for the store (``store.validate``'s ``InvalidValue``) or for channel configs
(``notify.ChannelConfigError``) is reused inside a model through :func:`reuse_check`, so its
message and field reach the answer unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from pydantic_core import PydanticCustomError, core_schema

from store.errors import InvalidValue

from ..errors import ApiError

__all__ = [
    "EXTRA_COMPONENTS",
    "REF_TEMPLATE",
    "REQUEST_CONFIG",
    "RequestModel",
    "ResponseModel",
    "api_error",
    "component",
    "component_schemas",
    "invalid",
    "refuse_unknown",
    "reuse_check",
    "validate",
]

REF_TEMPLATE = "#/components/schemas/{model}"
REQUEST_CONFIG = ConfigDict(strict=True, extra="forbid")
"""No ``"1"`` for ``1``, no ``1`` for ``true``, no field the model does not declare."""

T = TypeVar("T")


class RequestModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


_COMPONENT = "x-floodwatch-component"


def component(name: str) -> dict[str, Any]:
    """A reference to a schema of ``#/components/schemas`` that no model declares (yet), such as
    ``Uuid`` or ``Timestamp``, for ``WithJsonSchema``. pydantic resolves every ``$ref`` it meets
    against its own definitions, so the reference is written as a placeholder key and becomes
    a ``$ref`` in :func:`component_schemas`."""
    return {_COMPONENT: name}


def _resolve_components(node: Any) -> Any:
    if isinstance(node, list):
        return [_resolve_components(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _resolve_components(value) for key, value in node.items()}
    name = out.pop(_COMPONENT, None)
    if name is not None:
        out = {"$ref": REF_TEMPLATE.format(model=name), **out}
    return out


# --------------------------------------------------------------------------- validation


def reuse_check(check: Callable[[Any], T]) -> Callable[[Any], T]:
    """``check`` as a pydantic validator: an ``InvalidValue`` or ``ValueError`` it raises becomes
    an error of type ``invalid_value`` keeping its message (and the field it names)."""

    def run(value: Any) -> T:
        try:
            return check(value)
        except InvalidValue as exc:
            raise invalid(str(exc), exc.field) from None
        except ValueError as exc:
            raise invalid(str(exc)) from None

    return run


def invalid(message: str, field: str | None = None) -> PydanticCustomError:
    """An error of ours inside a model: ``message`` as the answer says it, ``field`` when it is
    not the location the error is raised at."""
    return PydanticCustomError("invalid_value", "{message}", {"message": message, "field": field})


_TYPE_WORDS = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "int_type": "must be an integer",
    "float_type": "must be a number",
}


def api_error(exc: ValidationError, required: frozenset[str] = frozenset()) -> ApiError:
    """The answer to a body its model refused, as the hand-written checks gave it: an unknown
    field first (the alphabetically first one), else the first error in the order the model
    declares its fields; ``field`` is the dotted location (``config.url``) unless the check that
    failed named another. ``null`` for a field in ``required`` reads as missing."""
    errors = exc.errors(include_url=False)
    unknown = sorted(_dotted(e["loc"]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return ApiError(400, "invalid_parameter", f"unknown field {unknown[0]}", field=unknown[0])
    first = errors[0]
    field = _dotted(first["loc"])
    kind = first["type"]
    ctx = first.get("ctx") or {}
    if kind == "invalid_value":
        return ApiError(400, "invalid_parameter", str(ctx["message"]), field=ctx["field"] or field)
    if kind == "missing" or (first["input"] is None and field in required):
        return ApiError(400, "invalid_parameter", f"{field} is required", field=field)
    words = _TYPE_WORDS.get(kind, first["msg"])
    return ApiError(400, "invalid_parameter", f"{field} {words}", field=field)


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def validate(
    model: type[T], body: Mapping[str, Any], context: Mapping[str, Any] | None = None
) -> T:
    """``body`` (a decoded JSON object) checked by ``model``; ``ApiError`` 400 otherwise.
    ``context`` reaches the model's validators (e.g. the stored row a PATCH applies to)."""
    adapter, required = _adapter(model)
    try:
        return adapter.validate_python(body, context=context)
    except ValidationError as exc:
        raise api_error(exc, required) from None


def refuse_unknown(model: type[Any], body: Mapping[str, Any]) -> None:
    """400 for the first unknown field of ``body`` (as :func:`validate` answers), for a handler
    that must refuse one before work that other errors wait for (a PATCH's lookup: 404 first)."""
    if issubclass(model, BaseModel):
        known: set[str] = set(model.model_fields)
    else:
        known = set(model.__annotations__)
    unknown = sorted(set(body) - known)
    if unknown:
        raise ApiError(400, "invalid_parameter", f"unknown field {unknown[0]}", field=unknown[0])


_ADAPTERS: dict[type[Any], tuple[TypeAdapter[Any], frozenset[str]]] = {}


def _adapter(model: type[T]) -> tuple[TypeAdapter[T], frozenset[str]]:
    """The model's validator and its required top-level fields (built once per model)."""
    known = _ADAPTERS.get(model)
    if known is None:
        if issubclass(model, BaseModel):
            fields = model.model_fields.items()
            required = frozenset(name for name, info in fields if info.is_required())
        else:  # a TypedDict
            required = frozenset(getattr(model, "__required_keys__", ()))
        known = _ADAPTERS[model] = (TypeAdapter(model), required)
    return known


# --------------------------------------------------------------------------- JSON Schema


class _Schemas(GenerateJsonSchema):
    """JSON Schema 2020-12 as the document writes it: no generated ``title`` on models and
    fields (the component's name says it), unknown fields closed as declared."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> dict[str, Any]:
        out = super().model_schema(schema)
        out.pop("title", None)
        if isinstance(out.get("description"), str):  # a docstring's lines make one paragraph
            out["description"] = "\n\n".join(
                " ".join(p.split()) for p in out["description"].split("\n\n")
            )
        return out

    def typed_dict_schema(self, schema: core_schema.TypedDictSchema) -> dict[str, Any]:
        out = super().typed_dict_schema(schema)
        out.pop("title", None)
        return out


def component_schemas(
    models: Mapping[str, tuple[type[Any], JsonSchemaMode]],
) -> dict[str, dict[str, Any]]:
    """``#/components/schemas`` entries: each model under its name, plus the models they use
    (named by their class), in ``validation`` mode for requests or ``serialization`` for
    answers. A model whose schema refers to components it makes itself (``component(...)``
    placeholders that no model owns) names their maker in :data:`EXTRA_COMPONENTS`."""
    out: dict[str, dict[str, Any]] = {}
    for name, (model, mode) in models.items():
        schema = TypeAdapter(model).json_schema(
            mode=mode, ref_template=REF_TEMPLATE, schema_generator=_Schemas
        )
        for nested, definition in schema.pop("$defs", {}).items():
            out.setdefault(nested, _resolve_components(definition))
        out[name] = _resolve_components(schema)
        extra: Callable[[], dict[str, dict[str, Any]]] | None = getattr(
            model, EXTRA_COMPONENTS, None
        )
        if extra is not None:
            for nested, definition in extra().items():
                out.setdefault(nested, definition)
    return out


EXTRA_COMPONENTS = "__extra_components__"
"""A model's class attribute: a function giving the components its schema refers to besides
the models it uses (the channel types' ``<Type>Config``)."""
