"""Entra ID for the loopback Azure server: tokens that expire on a clock the test moves.

``EntraTokens.provider`` stands in for ``azure.identity.get_bearer_token_provider``: each call
issues a new token valid for ``lifetime`` seconds of ``now``. ``FakeAzureEntra`` wraps the
OpenAI fake's Azure routes and answers Azure's 401 to an expired or unknown token, so a client
that keeps its first token fails once the clock passes its expiry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from embedify_openai.testing import API_KEY, FakeOpenAI

from embedify.testing import FakeService, Request, Response

EXPIRED = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect "
    "(https://cognitiveservices.azure.com), or have expired."
)


@dataclass
class EntraTokens:
    lifetime: float = 3600.0
    now: float = 0.0
    expiry: dict[str, float] = field(default_factory=dict)

    def provider(self) -> str:
        token = f"entra-{len(self.expiry)}"
        self.expiry[token] = self.now + self.lifetime
        return token

    def valid(self, token: str) -> bool:
        return self.expiry.get(token, float("-inf")) > self.now


@dataclass
class FakeAzureEntra(FakeService):
    tokens: EntraTokens = field(default_factory=EntraTokens)
    azure: FakeOpenAI = field(default_factory=lambda: FakeOpenAI(azure=True))

    def answer(self, request: Request, count: int, roll: float) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not self.tokens.valid(token):
            return Response(401, {"error": {"code": "401", "message": EXPIRED}})
        # a valid token: the wrapped fake checks the rest as it checks a key
        headers = {**request.headers, "authorization": f"Bearer {API_KEY}"}
        return self.azure.answer(dataclasses.replace(request, headers=headers), count, roll)
