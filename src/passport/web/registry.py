"""The explicit registry of Passport API methods.

The original design found controllers by file name and methods with
``dir()``/``getattr()`` on the URL.  Here a controller class is registered
with :meth:`Registry.controller`, and only its functions marked with
:func:`expose` become endpoints; the URL is looked up in a dictionary built at
import time, so no attribute is ever looked up from user input.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TypeVar

DEFAULT_MAX_LENGTH = 1024
_EXPOSE_MARK = "__passport_expose__"

C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Param:
    """One bound parameter of an endpoint, read from the function signature."""

    name: str
    kind: type
    max_length: int
    secret: bool

    @property
    def key(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Endpoint:
    """A reachable ``/<Controller>/<method>``."""

    controller: str
    method: str
    http_methods: frozenset[str]
    params: tuple[Param, ...]
    jsonp: bool
    cls: type
    func: Callable[..., Any]
    summary: str
    statuses: tuple[int, ...] = field(default=())
    cross_origin: bool = False
    right: str | None = None

    @property
    def path(self) -> str:
        return f"/{self.controller}/{self.method}"

    @property
    def read_only(self) -> bool:
        return self.http_methods <= {"GET", "HEAD"}


@dataclass(frozen=True)
class _Exposure:
    http_methods: frozenset[str]
    jsonp: bool
    secrets: frozenset[str]
    max_length: dict[str, int]
    statuses: tuple[int, ...]
    cross_origin: bool
    right: str | None


def expose(
    *http_methods: str,
    cross_origin: bool = False,
    jsonp: bool = False,
    secrets: tuple[str, ...] = (),
    max_length: dict[str, int] | None = None,
    statuses: tuple[int, ...] = (),
    right: str | None = None,
) -> Callable[[F], F]:
    """Mark a controller function as a Passport API method.

    :param http_methods: accepted methods; ``GET`` also admits ``HEAD``.
    :param cross_origin: pages of an application's registered origins may call it
        with the user's cookie (CORS with credentials, and writes past the CSRF
        check).  Closed by default: an unmarked method answers Passport's own pages
        only, so a registered application's page (or an XSS on it) can never drive
        it with a visiting administrator's session.  Only what applications need
        (sign-in, status, permission checks) is marked.
    :param jsonp: may be answered as JSONP (only allowed for read-only methods,
        and only for cross-origin ones: JSONP exists to be called from other sites).
    :param secrets: parameters that must come from the request body, never
        the URL (passwords), and are never echoed back in errors.
    :param max_length: per-parameter length limits (default 1024 characters).
    :param statuses: error statuses the method itself may answer (for OpenAPI).
    :param right: the Passport permission the caller must hold (``users:write``…, or
        ``admin``), checked before the method runs: a caller without it learns nothing
        of the objects it names (401 signed out, 403 without the right).  The
        operation in :mod:`passport.services.administration` checks it again, with the
        escalation rule, because the CLI and the console call it too.
    """
    methods = frozenset(m.upper() for m in (http_methods or ("GET",)))
    if "GET" in methods:
        methods |= {"HEAD"}
    if jsonp and not methods <= {"GET", "HEAD"}:
        raise TypeError("JSONP is only for read-only (GET) methods")
    if jsonp and not cross_origin:
        raise TypeError("JSONP is a cross-origin channel: mark the method cross_origin=True")

    def mark(func: F) -> F:
        setattr(
            func,
            _EXPOSE_MARK,
            _Exposure(
                methods,
                jsonp,
                frozenset(secrets),
                dict(max_length or {}),
                statuses,
                cross_origin,
                right,
            ),
        )
        return func

    return mark


def _param_kind(name: str, annotation: Any) -> type:
    args = typing.get_args(annotation)
    if (
        typing.get_origin(annotation) not in (typing.Union, types.UnionType)
        or type(None) not in args
    ):
        raise TypeError(f"parameter {name} must be Optional: a missing parameter is None")
    (kind,) = [a for a in args if a is not type(None)]
    if kind not in (str, int, bool):
        raise TypeError(f"parameter {name}: only str, int and bool are supported")
    return typing.cast(type, kind)


def _endpoint(controller: str, cls: type, func: Callable[..., Any], spec: _Exposure) -> Endpoint:
    hints = typing.get_type_hints(func)
    params = []
    for pname in list(inspect.signature(func).parameters)[1:]:
        params.append(
            Param(
                name=pname,
                kind=_param_kind(pname, hints.get(pname)),
                max_length=spec.max_length.get(pname, DEFAULT_MAX_LENGTH),
                secret=pname in spec.secrets,
            )
        )
    keys = [p.key for p in params]
    if len(set(keys)) != len(keys):
        raise TypeError(f"{controller}.{func.__name__}: parameter names clash ignoring case")
    doc = inspect.getdoc(func) or ""
    return Endpoint(
        controller=controller,
        method=func.__name__,
        http_methods=spec.http_methods,
        params=tuple(params),
        jsonp=spec.jsonp,
        cls=cls,
        func=func,
        summary=doc.split("\n\n")[0].replace("\n", " "),
        statuses=spec.statuses,
        cross_origin=spec.cross_origin,
        right=spec.right,
    )


class Registry:
    """Maps lower-cased ``(controller, method)`` to :class:`Endpoint`."""

    def __init__(self) -> None:
        self._endpoints: dict[tuple[str, str], Endpoint] = {}

    def controller(self, name: str) -> Callable[[C], C]:
        """Class decorator: register ``cls`` under ``/<name>/…``."""

        def register(cls: C) -> C:
            for attr, value in vars(cls).items():
                spec = getattr(value, _EXPOSE_MARK, None)
                if spec is None:
                    continue
                if attr.startswith("_"):
                    raise TypeError(f"{cls.__name__}.{attr}: private functions cannot be exposed")
                endpoint = _endpoint(name, cls, value, spec)
                key = (name.lower(), attr.lower())
                if key in self._endpoints:
                    raise TypeError(f"{name}/{attr} is registered twice")
                self._endpoints[key] = endpoint
            return cls

        return register

    def find(self, controller: str, method: str) -> Endpoint | None:
        return self._endpoints.get((controller.lower(), method.lower()))

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(sorted(self._endpoints.values(), key=lambda e: e.path.lower()))

    def __len__(self) -> int:
        return len(self._endpoints)
