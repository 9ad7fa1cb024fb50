"""Amazon Bedrock's errors -> tollgate's, by table: ``error_for_code`` (an error code, from an HTTP error or
an exception frame of a stream) and ``error_for_exception`` (anything a boto3 call raises). No boto3 or
botocore import: transport failures are known by class name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import (
    TollgateError,
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from .http_errors import error_for_status

PROVIDER = "bedrock"
MAX_MESSAGE = 500

_AUTH = "upstream rejected tollgate's credentials for bedrock: {}"

# Keyed by the lower-cased code: HTTP errors say ``ThrottlingException``, stream frames
# ``throttlingException``. Values: the error class and its message template.
ERRORS: dict[str, tuple[type[TollgateError], str]] = {
    "throttlingexception": (UpstreamRateLimited, "bedrock is rate limiting: {}"),
    "servicequotaexceededexception": (UpstreamRateLimited, "bedrock is rate limiting: {}"),
    "toomanyrequestsexception": (UpstreamRateLimited, "bedrock is rate limiting: {}"),
    "validationexception": (UpstreamBadRequest, "bedrock: {}"),
    "resourcenotfoundexception": (UpstreamNotFound, "bedrock: model not found: {}"),
    "accessdeniedexception": (UpstreamAuthError, _AUTH),
    "unrecognizedclientexception": (UpstreamAuthError, _AUTH),
    "invalidsignatureexception": (UpstreamAuthError, _AUTH),
    "expiredtokenexception": (UpstreamAuthError, _AUTH),
    "modelnotreadyexception": (UpstreamUnavailable, "bedrock is unavailable: {}"),
    "serviceunavailableexception": (UpstreamUnavailable, "bedrock is unavailable: {}"),
    "modeltimeoutexception": (UpstreamTimeout, "bedrock timed out: {}"),
    "internalserverexception": (UpstreamError, "bedrock failed: {}"),
    "modelstreamerrorexception": (UpstreamError, "bedrock failed: {}"),
    "modelerrorexception": (UpstreamError, "bedrock failed: {}"),
}

# Missing credentials are the operator's to fix, not the upstream's failure: 503, saying what to configure.
_CONFIGURE = (
    ": configure the standard AWS chain (AWS_PROFILE, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an "
    "IAM role) or pick another provider with TOLLGATE_DEFAULT_PROVIDER"
)

# Failures without an answer, by botocore/urllib3 class name (no botocore import needed to map them).
TRANSPORT_ERRORS: dict[str, tuple[type[TollgateError], str]] = {
    "NoCredentialsError": (UpstreamUnavailable, "tollgate has no AWS credentials for bedrock" + _CONFIGURE),
    "PartialCredentialsError": (
        UpstreamUnavailable,
        "tollgate's AWS credentials for bedrock are incomplete" + _CONFIGURE,
    ),
    "CredentialRetrievalError": (
        UpstreamUnavailable,
        "tollgate cannot load its AWS credentials for bedrock" + _CONFIGURE,
    ),
    "ConnectTimeoutError": (UpstreamUnavailable, "cannot connect to bedrock (connect timeout)"),
    "EndpointConnectionError": (UpstreamUnavailable, "cannot connect to bedrock"),
    "ReadTimeoutError": (UpstreamTimeout, "bedrock did not answer in time"),
    "ConnectionClosedError": (UpstreamError, "bedrock closed the connection"),
    "ResponseStreamingError": (UpstreamError, "bedrock's stream broke off"),
    "ProtocolError": (UpstreamError, "bedrock's stream broke off"),
    "ParserError": (UpstreamError, "bedrock sent a malformed event stream"),
    # botocore checks the request before sending it; what fails there came from the client's body
    "ParamValidationError": (
        UpstreamBadRequest,
        "bedrock refuses this request's values before it is sent (an empty stop sequence, tool call id "
        "or tool name?)",
    ),
}


def message_of(body: Any) -> str:
    if isinstance(body, Mapping):
        return str(body.get("message") or body.get("Message") or "no message")[:MAX_MESSAGE]
    return "no message"


def error_for_code(code: str, message: str) -> TollgateError:
    """The tollgate error for a Bedrock error code (either capitalisation)."""
    known = ERRORS.get(code.lower())
    if known is None:
        return UpstreamError(f"{PROVIDER} failed with {code or 'an unknown error'}: {message}")
    error_class, template = known
    param = "model" if code.lower() == "resourcenotfoundexception" else None
    return error_class(template.format(message[:MAX_MESSAGE] or "no message"), param=param)


def _client_error(response: Mapping[str, Any]) -> TollgateError:
    """A botocore ``ClientError`` (HTTP error or exception frame): by code, else by HTTP status."""
    error = response["Error"]
    code, message = str(error.get("Code") or ""), str(error.get("Message") or "")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if code.lower() not in ERRORS and isinstance(status, int) and status >= 400:
        return error_for_status(PROVIDER, status, message or code)
    return error_for_code(code, message)


def error_for_exception(exc: BaseException) -> TollgateError:
    """Any exception out of a boto3 call -> a tollgate error (tollgate errors pass through)."""
    if isinstance(exc, TollgateError):
        return exc
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping) and isinstance(response.get("Error"), Mapping):
        return _client_error(response)
    for cls in type(exc).__mro__:
        known = TRANSPORT_ERRORS.get(cls.__name__)
        if known is not None:
            error_class, message = known
            return error_class(message)
    return UpstreamError(f"{PROVIDER} call failed: {type(exc).__name__}")
