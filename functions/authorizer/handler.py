"""The edge authorizer: an API Gateway REQUEST authorizer on ``Authorization: Bearer <key>``.

It looks the key up by its SHA-256 in the table (the same ``Authenticator`` the app runs) and:

- allows a valid key with a policy on the WHOLE API
  (``arn:aws:execute-api:{region}:{account}:{api}/{stage}/*/*``, so a cached allow does not depend on the
  first path seen), context ``{tenant, key_id, pool}`` and the key id as principal;
- refuses a missing, unknown, revoked or expired key by raising ``Exception("Unauthorized")``: API Gateway
  answers 401 (what OpenAI clients expect for a bad key), whereas an explicit Deny policy gives 403. The 401
  does not depend on the path either, so caching stays consistent.
- Any other failure (the table unreachable) raises something else: API Gateway answers 500, never an allow.

The app still checks every key itself: revocation is bounded by its cache, not this authorizer's. The key is
never logged. Needs only ``TOLLGATE_TABLE`` (and the region): no secret. Clients are built at module scope.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
)

from tollgate.config import Settings
from tollgate.errors import Unauthorized
from tollgate.keys import Authenticator, Principal, key_from_headers
from tollgate.logs import configure_logging, log_event
from tollgate.store.dynamodb import DynamoDBStore

logger = logging.getLogger("tollgate.authorizer")

UNAUTHORIZED = "Unauthorized"  # the exact message API Gateway turns into a 401


def build_authenticator(settings: Settings) -> Authenticator:
    store = DynamoDBStore(settings.table, region=settings.aws_region, threads=2)
    store.client()  # built during init (and in a SnapStart snapshot), not on the first request
    return Authenticator(store, cache_seconds=settings.key_cache_seconds, allow_open=False)


def allow(event: APIGatewayAuthorizerRequestEvent, principal: Principal) -> dict[str, Any]:
    arn = event.parsed_arn
    policy = APIGatewayAuthorizerResponse(
        principal_id=principal.key_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        partition=arn.partition,
        context={"tenant": principal.tenant, "key_id": principal.key_id, "pool": principal.pool},
    )
    policy.allow_all_routes()
    return policy.asdict()


async def authorize(authenticator: Authenticator, event: APIGatewayAuthorizerRequestEvent) -> dict[str, Any]:
    authorization = event.headers.get("authorization")  # powertools v3: case-insensitive
    x_api_key = event.headers.get("x-api-key")
    try:
        key = key_from_headers(authorization, x_api_key)
        principal = await authenticator.authenticate(key, loopback=False)
    except Unauthorized as exc:
        log_event(logger, logging.INFO, "authorizer_denied", reason=exc.code or "invalid_api_key")
        raise Exception(UNAUTHORIZED) from None  # API Gateway's 401 contract
    log_event(logger, logging.INFO, "authorizer_allowed", tenant=principal.tenant, key_id=principal.key_id)
    return allow(event, principal)


_settings = Settings()
configure_logging(_settings.log_level)
_authenticator = build_authenticator(_settings)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return asyncio.run(authorize(_authenticator, APIGatewayAuthorizerRequestEvent(event)))
