"""Who is calling: the authenticated principal derived from a verified token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller. ``session_id`` is the token's ``session_id``, else ``jti``, else a hash."""

    user_id: str
    session_id: str
    is_admin: bool
    issued_at: datetime
    expires_at: datetime
    token_id: str | None = None
