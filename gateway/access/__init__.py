"""Access control: roles, per-user camera lists, signed viewing tokens, the cross-site rule.

``policy`` decides (sans-IO), ``tokens`` signs and verifies (sans-IO), ``http`` is the
aiohttp side: ``add_access(app, config)`` installs the middleware, the denial counter
(``DENIALS``) and ``POST /api/tokens``.
"""

from .http import (
    ACCESS,
    DENIALS,
    GRANT,
    Access,
    Denials,
    add_access,
    carried_query,
    principal,
    with_query,
)
from .policy import (
    DENIAL_STATUS,
    RULES,
    Attempt,
    Decision,
    Denial,
    Family,
    Policy,
    Principal,
    Via,
    camera_view,
)
from .tokens import ExpiredToken, InvalidToken, Scope, Token, TokenSigner

__all__ = [
    "ACCESS",
    "DENIALS",
    "DENIAL_STATUS",
    "GRANT",
    "RULES",
    "Access",
    "Attempt",
    "Decision",
    "Denial",
    "Denials",
    "ExpiredToken",
    "Family",
    "InvalidToken",
    "Policy",
    "Principal",
    "Scope",
    "Token",
    "TokenSigner",
    "Via",
    "add_access",
    "camera_view",
    "carried_query",
    "principal",
    "with_query",
]
