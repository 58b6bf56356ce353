"""The written summary of an incident, optionally by a language model.

The detector always writes a deterministic summary (``detect/summary.py``). When an
OpenAI-compatible endpoint is configured, :meth:`Summarizer.summarize` asks it for a 3-5 sentence
summary for an on-call engineer, from the incident's facts, and returns the deterministic one
(``fallback``) on any failure: no endpoint, refused connection, timeout, a status other than 200,
a body that is not the expected JSON, an empty or overlong text. It never raises (except
``asyncio.CancelledError`` when its caller is cancelled) and never logs the API key.

The request is ``POST {base_url}/chat/completions`` with ``{"model", "messages", "temperature":
0.2, "max_tokens"}`` and ``Authorization: Bearer <api_key>`` when a key is set.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import orjson

__all__ = ["SYSTEM_PROMPT", "Summarizer", "SummaryConfig", "redact_url"]

log = logging.getLogger("floodwatch.summarizer")

SYSTEM_PROMPT = (
    "You write incident summaries for a network on-call engineer who was just woken up at 3 am "
    "by a DDoS alert. From the incident facts given as JSON, write 3 to 5 short, plain sentences: "
    "what kind of attack it is and against which node, how large it is compared with the usual "
    "traffic (the baseline), where it comes from (top sources, countries, networks, ports), how "
    "long it has lasted and whether it is still going on, and what to check or do first. Use only "
    "the facts given and never invent numbers, addresses or names. No greeting, no headings, no "
    "lists, no markdown."
)

#: A longer answer is not the 3-5 sentences asked for: the fallback is used instead.
MAX_SUMMARY_CHARS = 2_000
#: Largest response body read from the endpoint.
MAX_RESPONSE_BYTES = 1_048_576
_THINK_RE = re.compile(r"^\s*<think>.*?</think>", re.DOTALL | re.IGNORECASE)


class SummaryConfig(Protocol):
    """The summary settings of ``api.config.DetectConfig`` (``detect.summary_llm_*``)."""

    @property
    def summary_llm_url(self) -> str: ...
    @property
    def summary_llm_model(self) -> str: ...
    @property
    def summary_llm_api_key(self) -> str: ...
    @property
    def summary_llm_timeout_secs(self) -> float: ...


def redact_url(url: str) -> str:
    """``url`` without user information (``https://user:pw@host`` -> ``https://host``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _Failed(Exception):
    """One reason to use the fallback (logged, never raised out of ``summarize``)."""


class Summarizer:
    """Asks an OpenAI-compatible chat completions endpoint for an incident summary."""

    def __init__(
        self,
        base_url: str = "",
        model: str = "",
        api_key: str = "",
        *,
        timeout_secs: float = 5.0,
        max_tokens: int = 300,
        temperature: float = 0.2,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if timeout_secs <= 0:
            raise ValueError("timeout_secs must be greater than 0")
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self.base_url = base_url.strip().rstrip("/")
        self.model = model.strip()
        self._api_key = api_key
        self.timeout_secs = timeout_secs
        self.max_tokens = max_tokens
        self.temperature = temperature
        self._session = session
        self._own_session = session is None

    @classmethod
    def from_config(
        cls,
        cfg: SummaryConfig,
        *,
        max_tokens: int = 300,
        session: aiohttp.ClientSession | None = None,
    ) -> Summarizer:
        """A summarizer for ``detect.summary_llm_*``; disabled when the URL is empty."""
        return cls(
            cfg.summary_llm_url,
            cfg.summary_llm_model,
            cfg.summary_llm_api_key,
            timeout_secs=cfg.summary_llm_timeout_secs,
            max_tokens=max_tokens,
            session=session,
        )

    def __repr__(self) -> str:
        return (
            f"Summarizer(base_url={redact_url(self.base_url)!r}, model={self.model!r}, "
            f"api_key={'<set>' if self._api_key else '<none>'})"
        )

    @property
    def enabled(self) -> bool:
        return bool(self.base_url) and bool(self.model)

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def build_request(self, facts: dict[str, Any]) -> dict[str, Any]:
        """The JSON body sent for ``facts``."""
        facts_json = orjson.dumps(
            facts, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        ).decode()
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Incident facts:\n{facts_json}"},
            ],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def close(self) -> None:
        """Close the HTTP session this summarizer opened (not one that was passed in)."""
        if self._own_session and self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> Summarizer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def summarize(self, facts: dict[str, Any], fallback: str) -> str:
        """The model's summary of ``facts``, or ``fallback`` on any failure."""
        if not self.enabled:
            return fallback
        try:
            async with asyncio.timeout(self.timeout_secs):
                return await self._ask(facts)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            reason = f"no answer within {self.timeout_secs:g} s"
        except _Failed as exc:
            reason = str(exc)
        except aiohttp.ClientError as exc:
            reason = f"request failed: {type(exc).__name__}"
        except Exception as exc:
            reason = f"unexpected {type(exc).__name__}"
        log.warning(
            "LLM summary from %s (model %s) failed, using the deterministic summary: %s",
            redact_url(self.base_url),
            self.model,
            reason,
        )
        return fallback

    async def _ask(self, facts: dict[str, Any]) -> str:
        try:
            body = orjson.dumps(self.build_request(facts))
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise _Failed(f"facts are not JSON: {type(exc).__name__}") from None
        session = await self._get_session()
        timeout = aiohttp.ClientTimeout(total=self.timeout_secs)
        async with session.post(
            self.endpoint, data=body, headers=self._headers(), timeout=timeout
        ) as resp:
            if resp.status != 200:
                raise _Failed(f"status {resp.status}")
            raw = await resp.content.read(MAX_RESPONSE_BYTES + 1)
        if len(raw) > MAX_RESPONSE_BYTES:
            raise _Failed("response body too large")
        return _extract_text(raw)


def _extract_text(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Failed("response is not JSON") from None
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Failed("response has no choices[0].message.content") from None
    if not isinstance(content, str):
        raise _Failed("message content is not text")
    text = _THINK_RE.sub("", content).strip()
    if not text:
        raise _Failed("empty summary")
    if len(text) > MAX_SUMMARY_CHARS:
        raise _Failed(f"summary longer than {MAX_SUMMARY_CHARS} characters")
    return text
