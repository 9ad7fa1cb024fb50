"""Code execution containers belong to the tenant whose request was given them.

OpenAI's hosted ``code_interpreter`` and ``shell`` tools and Anthropic's code execution tool run in a
container on the operator's provider account, and a later request may name that container by id to work in
it again (its files, its state). Every tenant shares the operator's account, so the id alone would let a
tenant who learns another tenant's id read that tenant's files. tollgate therefore records each container id
an answer reveals under the caller's tenant (``record``, when the request finishes, before its last byte),
and a request that names a container must name one of its own tenant's (``check``, before anything is held
or sent): any other id, another tenant's or one tollgate never gave out, is a 404 ``container_not_found``
that does not say which.

Where ids appear (``docs/containers.md``):
- a Messages request's ``container`` (an id, or an object with an ``id``); an Anthropic answer's
  ``container`` object (``id``, ``expires_at``), which tollgate passes on to the Messages client;
- a native ``/v1/responses`` request's hosted tools (a ``code_interpreter`` tool's ``container`` id; a
  ``shell`` tool's ``environment``), the tools a ``tool_search_output`` input item loads, and its ``input``
  items from earlier answers (``{"type": "auto"}`` works again in an active container they name); the
  answer's ``code_interpreter_call`` items (``container_id``) and ``shell_call`` items
  (``environment.container_id``).
A record lasts until the answer's ``expires_at`` when it gives one (capped), else ``KEEP_SECONDS`` after the
last answer that revealed the container, longer than either provider keeps an idle container.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import timeutil
from .errors import BadRequest, NotFound
from .logs import log_event

if TYPE_CHECKING:
    from .store.base import ContainerStore

logger = logging.getLogger(__name__)

ANTHROPIC, OPENAI = "claude", "openai"  # the provider names ``tool_uses`` counts fees under
KEEP_SECONDS = 31 * 86_400  # Anthropic keeps a container 30 days; OpenAI's expire after minutes idle
MAX_ID_LENGTH = 256


@dataclass(frozen=True, slots=True)
class Named:
    """A container a request asks to work in: whose provider, its id, and where the request named it."""

    provider: str
    container_id: str
    param: str


@dataclass(frozen=True, slots=True)
class Revealed:
    """A container an answer worked in; ``expires_at`` as the provider said (None: not said)."""

    provider: str
    container_id: str
    expires_at: str | None = None


def _id(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        message = f"{param} must be a container id (a string of 1-{MAX_ID_LENGTH} characters)"
        raise BadRequest(message, param=param)
    return value


def anthropic_named(extra: Mapping[str, Any]) -> list[Named]:
    """The container a Messages request's ``container`` names (an object without ``id`` makes a new one)."""
    container = extra.get("container")
    if container is None:
        return []
    if isinstance(container, dict):
        if container.get("id") is None:
            return []
        return [Named(ANTHROPIC, _id(container["id"], "container.id"), "container.id")]
    return [Named(ANTHROPIC, _id(container, "container"), "container")]


def openai_named(body: Mapping[str, Any]) -> list[Named]:
    """The containers a native Responses body names, wherever OpenAI would work in one: its hosted tools
    (a ``code_interpreter`` tool's ``container`` id, a ``shell`` tool's ``environment``), the tools a
    ``tool_search_output`` input item loads (the same), and its ``input`` items from earlier answers (a
    ``code_interpreter_call``'s ``container_id``, a ``shell_call``'s ``environment``, an output text's
    ``container_file_citation`` annotations): with ``{"type": "auto"}`` OpenAI works again in an active
    container its context names."""
    named = _tools(body.get("tools"), "tools")
    items = body.get("input")
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        where = f"input[{index}]"
        if item.get("container_id") is not None:
            named.append(_openai(item["container_id"], f"{where}.container_id"))
        named += _environment(item, where)
        named += _tools(item.get("tools"), f"{where}.tools")  # a tool_search_output's loaded tools
        named += _annotations(item.get("content"), f"{where}.content")
    return named


def _openai(value: Any, param: str) -> Named:
    return Named(OPENAI, _id(value, param), param)


def _tools(tools: Any, where: str) -> list[Named]:
    named: list[Named] = []
    for index, tool in enumerate(tools if isinstance(tools, list) else []):
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "code_interpreter" and isinstance(tool.get("container"), str):
            named.append(_openai(tool["container"], f"{where}[{index}].container"))
        named += _environment(tool, f"{where}[{index}]")
    return named


def _environment(holder: Mapping[str, Any], where: str) -> list[Named]:
    """A ``shell`` tool's or ``shell_call`` item's ``environment`` container: a ``container_reference``
    (which must hold an id), or any environment that carries a ``container_id``."""
    environment = holder.get("environment")
    if not isinstance(environment, dict):
        return []
    if environment.get("type") != "container_reference" and environment.get("container_id") is None:
        return []
    return [_openai(environment.get("container_id"), f"{where}.environment.container_id")]


def _annotations(content: Any, where: str) -> list[Named]:
    """The containers an output text's file citations name (``container_file_citation``)."""
    named: list[Named] = []
    for index, part in enumerate(content if isinstance(content, list) else []):
        notes = part.get("annotations") if isinstance(part, dict) else None
        for n, note in enumerate(notes if isinstance(notes, list) else []):
            if isinstance(note, dict) and note.get("container_id") is not None:
                param = f"{where}[{index}].annotations[{n}].container_id"
                named.append(_openai(note["container_id"], param))
    return named


def anthropic_revealed(container: Any) -> list[Revealed]:
    """The container of an Anthropic answer (its ``container`` object), if any."""
    if not isinstance(container, dict) or not isinstance(container.get("id"), str) or not container["id"]:
        return []
    expires = container.get("expires_at")
    return [Revealed(ANTHROPIC, container["id"], expires if isinstance(expires, str) else None)]


def openai_revealed(items: Iterable[Any]) -> list[Revealed]:
    """The containers a native Responses answer's output items worked in."""
    found: dict[str, Revealed] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        environment = item.get("environment")
        candidates = [item.get("container_id")]
        if isinstance(environment, dict):
            candidates.append(environment.get("container_id"))
        for container_id in candidates:
            if isinstance(container_id, str) and container_id and len(container_id) <= MAX_ID_LENGTH:
                found.setdefault(container_id, Revealed(OPENAI, container_id))
    return list(found.values())


async def check(store: ContainerStore, tenant: str, named: Iterable[Named]) -> None:
    """A 404 unless every container the request names is its tenant's: one store read per distinct
    container (a body may name one thousands of times), none when it names none."""
    seen: set[tuple[str, str]] = set()
    for container in named:
        key = (container.provider, container.container_id)
        if key in seen:
            continue
        seen.add(key)
        if await store.container_owner(*key) != tenant:
            raise NotFound(
                f"no container with id {container.container_id!r}",
                param=container.param,
                code="container_not_found",
            )


def _expiry(said: str | None) -> str:
    """Until the provider's expiry when it gave one (at most ``KEEP_SECONDS`` away), else ``KEEP_SECONDS``."""
    now = timeutil.utc_now()
    latest = now + timedelta(seconds=KEEP_SECONDS)
    if said is not None:
        try:
            given = timeutil.parse_time(said)
        except ValueError:
            given = latest
        if now < given < latest:
            return timeutil.format_time(given)
    return timeutil.format_time(latest)


async def record(store: ContainerStore, tenant: str, revealed: Iterable[Revealed]) -> None:
    """Record the answer's containers as the tenant's. One another tenant holds (it cannot have named it:
    ``check``) stays theirs, and is logged."""
    for container in revealed:
        expires = _expiry(container.expires_at)
        if not await store.claim_container(tenant, container.provider, container.container_id, expires):
            held = "container_held_by_another_tenant"
            log_event(logger, logging.WARNING, held, provider=container.provider)
