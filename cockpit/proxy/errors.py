"""Errors in OpenAI's shape, so any OpenAI client shows them as it shows OpenAI's own."""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from fastapi.responses import JSONResponse

STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
}


class ProxyError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, *, type: str | None = None, param: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type or STATUS_TYPES.get(status, "api_error")
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


CREDENTIAL_SHAPES = re.compile(
    r"""(?ix)
    (?:authorization\s*[:=]\s*)?(?:bearer|basic|token)\s+["']?[^\s"',;]{6,}  # credentials by scheme
    | (?:api[-_ ]?key|secret|password|passwd|key)["']?\s*[:=]\s*["']?[^\s"',;]{4,}  # named credentials, quoted or not
    | \b(?:sk|pk|rk|ck|ak|xox[abpr]|ghp|gho|ghs|github_pat|glpat|AKIA|ASIA|AIza)[-_A-Za-z0-9]{8,}  # well-known key prefixes
    | \beyJ[-_A-Za-z0-9]{8,}\.[-_A-Za-z0-9]{8,}(?:\.[-_A-Za-z0-9]*)?  # JWTs
    | [a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@  # user:password@ in URLs
    | \b[-_A-Za-z0-9+/]{32,}={0,2}  # long opaque strings (keys, tokens, signatures)
    """
)
"""What an upstream's error text may not show once it passes through the gateway."""
MASK = "[redacted]"


SECRET_PARAMETERS = ("key", "secret", "token", "password", "credential")
"""A deployment parameter whose name holds one of these carries a credential."""


def deployment_secrets(deployment: Mapping[str, Any]) -> tuple[str, ...]:
    """Every credential a model's deployment sends upstream: its key, and any other parameter or
    extra header whose name says it is one (AWS keys, tokens, `x-api-key`)."""
    found = [str(v) for k, v in deployment.items() if isinstance(v, str) and any(word in k.lower() for word in SECRET_PARAMETERS)]
    headers = deployment.get("extra_headers")
    if isinstance(headers, dict):
        found += [str(v) for v in headers.values() if isinstance(v, str)]
    return tuple(secret for secret in found if len(secret) >= 8)


def mask_credentials(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the given secrets and anything shaped like a credential replaced. Providers
    quote keys back in their errors ("Incorrect API key provided: sk-…"), sometimes whole."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return CREDENTIAL_SHAPES.sub(MASK, text)


def upstream_error(exc: BaseException, model: str, *, secrets: Iterable[str] = ()) -> ProxyError:
    """What the caller is told when the upstream call failed (never a 500). The upstream's own
    words are passed on only for a request it found invalid, and then with anything that looks
    like a credential masked; any other failure could describe the gateway's credentials or
    network, which are not the caller's business."""
    status = getattr(exc, "status_code", None)
    name = type(exc).__name__
    if _never_answered(exc):  # litellm reports it as a 500; nothing answered
        return ProxyError(502, f"The upstream provider of model `{model}` could not be reached; retry later.", "upstream_unreachable")
    if name in ("Timeout", "ReadTimeout", "WriteTimeout") or status == 408:
        return ProxyError(504, f"The upstream provider of model `{model}` did not answer in time; retry later.", "upstream_timeout")
    if status == 429:
        return ProxyError(429, f"The upstream provider of model `{model}` is rate limiting; retry later.", "upstream_rate_limited", headers={"retry-after": "1"})
    if status in (400, 413, 422):
        detail = str(getattr(exc, "message", "") or "").strip()
        detail = mask_credentials(detail.split(" - ", 1)[-1], secrets)[:500] if detail else "the upstream provider refused the request"
        return ProxyError(400, f"Model `{model}`: {detail}", "upstream_bad_request")
    if status in (401, 403):
        return ProxyError(502, f"The upstream provider of model `{model}` refused the gateway's credentials; an administrator must check the model's api_key.", "upstream_auth_failed")
    if status == 404:
        return ProxyError(502, f"The upstream provider does not know the model behind `{model}`; an administrator must check the model's litellm.model.", "upstream_model_not_found")
    if isinstance(status, int) and status >= 500:
        return ProxyError(502, f"The upstream provider of model `{model}` failed (HTTP {status}); retry later.", "upstream_error")
    return ProxyError(502, f"The upstream provider of model `{model}` could not be reached; retry later.", "upstream_unreachable")


NEVER_ANSWERED = ("APIConnectionError", "ConnectError", "ConnectTimeout", "PoolTimeout", "ClientConnectorError")
"""Failures before the provider had the request (litellm's, httpx's and aiohttp's names)."""


def _never_answered(exc: BaseException) -> bool:
    """Whether the chain of causes holds a connection failure (refused, reset, DNS)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if type(seen).__name__ in NEVER_ANSWERED or isinstance(seen, ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
