"""Import users from another system, with the password hashes they already have.

Input: CSV with a header row, or JSON Lines; fields ``username``, ``email``,
``display_name``, ``groups`` (``;``-separated in CSV, a list or string in JSON)
and ``password_hash`` (bcrypt ``$2b$…``, argon2 ``$argon2id$…`` or Django's
``pbkdf2_sha256$…``).  The hashes are verified as they are at the next login
and then replaced by argon2id (see :mod:`passport.services.passwords`).

Rows are checked first (a bad row is reported with its line number, then
skipped or the import stops, as the caller chooses); valid rows are written in
batches, each batch all-or-nothing.  After each committed batch a checkpoint
file records how far the import got, so an interrupted import resumes where it
stopped; a row already imported with the same hash counts as done, so even a
crash between commit and checkpoint cannot duplicate anyone.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy import select

from passport.errors import ClientError
from passport.lookalikes import lookalike_key
from passport.services.accounts import canonical
from passport.services.accounts import email_key
from passport.services.accounts import validate_display_name
from passport.services.accounts import validate_email
from passport.services.accounts import validate_username
from passport.services.applications import name_key
from passport.services.directory import validate_name
from passport.services.passwords import imported_hash_kind
from passport.storage.db import Database
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import Invitation
from passport.storage.models import User


class ImportAborted(Exception):
    """A bad row stopped an import run with ``on_error="abort"``."""


@dataclass(frozen=True)
class Row:
    line: int
    username: str
    username_key: str
    username_skeleton: str  # look-alikes share it (passport.lookalikes)
    email: str | None
    display_name: str
    groups: tuple[str, ...]
    password_hash: str


@dataclass
class ImportReport:
    imported: int = 0
    already_present: int = 0
    skipped: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    resumed_from: int = 0


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``(line number, record or error message)`` for every data row of the file."""
    # Bytes that are not UTF-8 are kept as surrogates and refused by their row (``_row``):
    # one bad line is reported like any other, the rest of the file still imports.
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as fh:
        first = fh.read(1)
        fh.seek(0)
        if path.suffix.lower() in (".jsonl", ".ndjson") or first == "{":
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except (ValueError, RecursionError):
                    yield number, "not valid JSON"
                    continue
                yield number, record if isinstance(record, dict) else "not a JSON object"
            return
        reader = csv.DictReader(fh)
        missing = {"username", "password_hash"} - set(reader.fieldnames or [])
        if missing:
            yield 1, f"the header lacks {', '.join(sorted(missing))}"
            return
        for record in reader:
            yield reader.line_num, dict(record)


def _row(line: int, record: dict[str, Any]) -> Row:
    def text(name: str) -> str | None:
        value = record.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ClientError(f"{name} must be text", source=name)
        if any("\udc80" <= c <= "\udcff" for c in value):
            raise ClientError(f"{name} is not UTF-8 text", source=name)
        return value

    username = validate_username(text("username"))
    password_hash = (text("password_hash") or "").strip()
    if imported_hash_kind(password_hash) is None:
        raise ClientError(
            "password_hash is not a bcrypt, argon2 or Django pbkdf2_sha256 hash",
            source="password_hash",
        )
    raw_groups = record.get("groups") or []
    if isinstance(raw_groups, str):
        raw_groups = [g for g in raw_groups.replace("|", ";").split(";") if g.strip()]
    if not isinstance(raw_groups, list) or not all(isinstance(g, str) for g in raw_groups):
        raise ClientError("groups must be a list of names", source="groups")
    groups = tuple(validate_name(g, "groups", "Group") for g in raw_groups)
    return Row(
        line=line,
        username=username,
        username_key=canonical(username),
        username_skeleton=lookalike_key(username),
        email=validate_email(text("email")),
        display_name=validate_display_name(text("display_name")),
        groups=groups,
        password_hash=password_hash,
    )


def count_rows(path: Path) -> int:
    with path.open("rb") as fh:
        lines = sum(1 for _ in fh)
    return max(0, lines - (0 if path.suffix.lower() in (".jsonl", ".ndjson") else 1))


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_path(path: Path) -> Path:
    return path.with_name(path.name + ".passport-import.json")


class Importer:
    def __init__(
        self,
        database: Database,
        now: datetime,
        *,
        batch_size: int = 1000,
        on_error: str = "skip",
        progress: Callable[[int], None] = lambda n: None,
    ) -> None:
        if on_error not in ("skip", "abort"):
            raise ValueError("on_error must be 'skip' or 'abort'")
        self.database = database
        self.now = now
        self.batch_size = batch_size
        self.on_error = on_error
        self.progress = progress

    def run(self, path: Path, *, resume: bool = False) -> ImportReport:
        report = ImportReport()
        state_file = checkpoint_path(path)
        fingerprint = _fingerprint(path)
        done_line = 0
        if resume and state_file.exists():
            state = json.loads(state_file.read_text())
            if state.get("file_sha256") != fingerprint:
                raise ImportAborted("the file changed since the interrupted import; not resuming")
            done_line = int(state.get("done_line", 0))
        report.resumed_from = done_line

        batch: list[Row] = []
        seen_keys: set[str] = set()
        seen_emails: set[str] = set()
        last_line = done_line
        for line, record in _records(path):
            last_line = line
            if line <= done_line:
                self.progress(1)
                continue
            try:
                if isinstance(record, str):
                    raise ClientError(record)
                row = _row(line, record)
                if row.username_skeleton in seen_keys:
                    raise ClientError(
                        f"username '{row.username}' appears twice in the file "
                        "(or looks like another one in it)"
                    )
                if row.email and email_key(row.email) in seen_emails:
                    raise ClientError(f"email '{row.email}' appears twice in the file")
            except ClientError as exc:
                self._bad(report, line, exc.message)
                self.progress(1)
                continue
            seen_keys.add(row.username_skeleton)
            if row.email:
                seen_emails.add(email_key(row.email))
            batch.append(row)
            if len(batch) >= self.batch_size:
                self._write(batch, report)
                self._checkpoint(state_file, fingerprint, line)
                self.progress(len(batch))
                batch = []
        if batch:
            self._write(batch, report)
            self.progress(len(batch))
        self._checkpoint(state_file, fingerprint, last_line)
        state_file.unlink(missing_ok=True)
        report.errors.sort()
        return report

    def _bad(self, report: ImportReport, line: int, message: str) -> None:
        report.errors.append((line, message))
        if self.on_error == "abort":
            raise ImportAborted(f"line {line}: {message}")
        report.skipped += 1

    @staticmethod
    def _checkpoint(state_file: Path, fingerprint: str, line: int) -> None:
        state_file.write_text(json.dumps({"file_sha256": fingerprint, "done_line": line}))

    def _write(self, batch: list[Row], report: ImportReport) -> None:
        """One transaction: conflicting rows are reported, the rest inserted together."""
        with self.database.session(write=True) as db, db.begin():
            # Existing accounts by look-alike key: a name that looks like an existing one
            # is that one (the unique index on users.username_skeleton would refuse it).
            skeletons = [r.username_skeleton for r in batch]
            emails = [email_key(r.email) for r in batch if r.email]
            existing = {
                skeleton: (key, stored_hash)
                for skeleton, key, stored_hash in db.execute(
                    select(User.username_skeleton, User.username_key, User.password_hash).where(
                        User.username_skeleton.in_(skeletons)
                    )
                )
            }
            taken_emails = (
                set(db.scalars(select(User.email_key).where(User.email_key.in_(emails))).all())
                # An address with an open invitation is its invited person's to take.
                | set(
                    db.scalars(
                        select(Invitation.email_key).where(
                            Invitation.email_key.in_(emails),
                            Invitation.accepted_at.is_(None),
                            Invitation.revoked_at.is_(None),
                            Invitation.expires_at > self.now,
                        )
                    ).all()
                )
                if emails
                else set()
            )
            group_names = self._group_names(db, batch)
            fresh: list[Row] = []
            for row in batch:
                clash = next(
                    (g for g in row.groups if group_names[lookalike_key(g)] != name_key(g)), None
                )
                if clash is not None:
                    self._bad(
                        report,
                        row.line,
                        f"group '{clash}' looks like another group's name; use that name exactly",
                    )
                elif row.username_skeleton in existing:
                    if existing[row.username_skeleton] == (row.username_key, row.password_hash):
                        report.already_present += 1
                    else:
                        self._bad(
                            report,
                            row.line,
                            f"username '{row.username}' already exists "
                            "(or looks like one that does)",
                        )
                elif row.email and email_key(row.email) in taken_emails:
                    self._bad(report, row.line, f"email '{row.email}' is already registered")
                else:
                    fresh.append(row)
            if fresh:
                db.execute(
                    insert(User),
                    [
                        {
                            "username": r.username,
                            "username_key": r.username_key,
                            "username_skeleton": r.username_skeleton,
                            "email": r.email,
                            "email_key": email_key(r.email) if r.email else None,
                            "display_name": r.display_name,
                            "password_hash": r.password_hash,
                            "disabled": False,
                            "created_at": self.now,
                            "password_changed_at": self.now,
                        }
                        for r in fresh
                    ],
                )
            self._memberships(db, fresh)
            report.imported += len(fresh)

    @staticmethod
    def _group_names(db: Any, batch: list[Row]) -> dict[str, str]:
        """The one name key each look-alike key stands for (groups.name_skeleton is unique):
        an existing group's, else the first spelling in the batch."""
        skeletons = {lookalike_key(g): name_key(g) for r in reversed(batch) for g in r.groups}
        if not skeletons:
            return {}
        existing = db.execute(
            select(Group.name_skeleton, Group.name_key).where(
                Group.name_skeleton.in_(list(skeletons))
            )
        )
        return {**skeletons, **dict(existing.all())}

    @staticmethod
    def _memberships(db: Any, rows: list[Row]) -> None:
        by_key: dict[str, str] = {}
        for group in (g for r in rows for g in r.groups):
            by_key.setdefault(name_key(group), group)  # a new group takes its first spelling
        if not by_key:
            return
        groups = {
            key: gid
            for key, gid in db.execute(
                select(Group.name_key, Group.id).where(Group.name_key.in_(list(by_key)))
            )
        }
        missing = [k for k in by_key if k not in groups]
        if missing:
            db.execute(
                insert(Group),
                [
                    {
                        "name": by_key[k],
                        "name_key": k,
                        "name_skeleton": lookalike_key(by_key[k]),
                        "description": "Imported.",
                    }
                    for k in missing
                ],
            )
            groups.update(
                {
                    key: gid
                    for key, gid in db.execute(
                        select(Group.name_key, Group.id).where(Group.name_key.in_(missing))
                    )
                }
            )
        ids = dict(
            db.execute(
                select(User.username_key, User.id).where(
                    User.username_key.in_([r.username_key for r in rows])
                )
            ).all()
        )
        pairs = {(groups[name_key(g)], ids[r.username_key]) for r in rows for g in r.groups}
        db.execute(insert(GroupMember), [{"group_id": g, "user_id": u} for g, u in sorted(pairs)])
