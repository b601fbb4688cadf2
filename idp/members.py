"""Members as the services see them: the read side of the users table.

A :class:`Member` is an account's fields, frozen; :func:`get` reads one in
the request's transaction, :func:`find_committed` outside it (one round
trip, for read-only paths such as UserInfo), and :data:`MEMBER_COLUMNS`
lets another module read a member with its own row in one statement.
``idp.accounts`` owns and writes the table; nothing here writes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from idp.db import AnyRow
from idp.errors import NotFoundError
from idp.models import User
from idp.prepared import read_in_transaction, read_one

__all__ = ["MEMBER_COLUMNS", "Member", "find_committed", "get", "member_of_row", "of_row"]


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    username: str
    email: str
    email_verified: bool
    name: str
    gender: str | None
    birthdate: dt.date | None
    is_admin: bool
    disabled: bool
    created_at: dt.datetime
    language: str = "en"
    """Of the pages the member chose, and of their mail."""


def of_row(u: User | AnyRow) -> Member:
    """A member from its row: an ORM object, or the columns of ``_MEMBER``."""
    return Member(
        id=u.id,
        username=u.username,
        email=u.email,
        email_verified=u.email_verified,
        name=u.name,
        gender=u.gender,
        birthdate=u.birthdate,
        is_admin=u.is_admin,
        disabled=u.disabled_at is not None,
        created_at=u.created_at,
        language=u.language,
    )


_USERS = User.metadata.tables[User.__tablename__]
_MEMBER = select(
    _USERS.c.id,
    _USERS.c.username,
    _USERS.c.email,
    _USERS.c.email_verified,
    _USERS.c.name,
    _USERS.c.gender,
    _USERS.c.birthdate,
    _USERS.c.is_admin,
    _USERS.c.disabled_at,
    _USERS.c.created_at,
    _USERS.c.language,
).where(_USERS.c.id == bindparam("user_id"))
"""Built once, of table columns: every refresh and UserInfo call asks it,
and a select of ORM attributes costs the ORM's compile step, about as much
again.  A Core statement does not autoflush: :func:`get` flushes first."""


def get(user_id: str) -> Member:
    """The member with this ``sub`` as this transaction sees it.  Raises NotFoundError."""
    if not user_id:
        raise NotFoundError("no such user")
    return _of_found(read_in_transaction(_MEMBER, {"user_id": user_id}))


def find_committed(user_id: str | None) -> Member | None:
    """The member with this ``sub`` as committed, read outside the request's
    transaction (one round trip, for read-only paths), or None."""
    row = read_one(_MEMBER, {"user_id": user_id}) if user_id else None
    return None if row is None else of_row(row)


MEMBER_COLUMNS = tuple(_MEMBER.selected_columns)
"""The columns a :class:`Member` is made of, for a statement of another
module that reads a member with something else in one round trip."""


def member_of_row(row: AnyRow) -> Member | None:
    """The member in a row holding :data:`MEMBER_COLUMNS` (None: an outer
    join found none)."""
    return None if row.id is None else of_row(row)


def _of_found(row: AnyRow | None) -> Member:
    if row is None:
        raise NotFoundError("no such user")
    return of_row(row)
