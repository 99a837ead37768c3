"""The audit trail: who did what, from where, and how it ended.  Never a secret."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from passport.storage.models import AuditEvent


@dataclass(frozen=True)
class AuditRecord:
    event: str
    outcome: str
    at: datetime
    user_id: int | None = None
    username: str = ""
    actor_id: int | None = None
    application: str = ""
    ip: str = ""
    user_agent: str = ""
    detail: str = ""


def write(db: Session, record: AuditRecord) -> None:
    db.add(
        AuditEvent(
            at=record.at,
            event=record.event[:64],
            outcome=record.outcome[:32],
            user_id=record.user_id,
            username=record.username[:64],
            actor_id=record.actor_id,
            application=record.application[:100],
            ip=record.ip[:45],
            user_agent=record.user_agent[:255],
            detail=record.detail[:2000],
        )
    )
