"""Panel users: creation, password checks (hashed with werkzeug's scrypt), password changes
and resets. Every password change, and a deactivation, ends all the user's sessions."""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import cache

import peewee
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash

from service.core.addresses import normalise_email
from service.core.db import transaction
from service.core.errors import InvalidInput
from service.core.models import User, new_session_token
from service.core.outbox import queue_email

MIN_PASSWORD = 10
RESET_SALT = "leadbridge.password-reset"
RESET_HOURS = 1


class WrongPassword(InvalidInput):
    code = "wrong_password"


def create_user(email: str, *, role: str, password: str, now: datetime) -> User:
    email = normalise_email(email)
    if role not in User.ROLES:
        raise InvalidInput(f"role must be one of {', '.join(User.ROLES)}")
    check_new_password(password)
    try:
        with transaction():
            return User.create(email=email, role=role, created_at=now,
                               password_hash=generate_password_hash(password))
    except peewee.IntegrityError:
        raise InvalidInput(f"a user with email {email} exists") from None


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD} characters")


@cache
def _dummy_hash() -> str:
    return generate_password_hash("no user has this password")


def authenticate(email: str, password: str) -> User | None:
    """The active user with this email and password. An unknown email costs one hash check
    too, against a dummy hash of the same method, so timing does not tell who has an account."""
    user = User.get_or_none(User.email == email.strip().lower())
    matches = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    return user if user is not None and user.active and matches else None


def end_sessions(user_id: int) -> str:
    """Every session of the user ends (logout, deactivation); the new token is returned."""
    token = new_session_token()
    User.update(session_token=token).where(User.id == user_id).execute()
    return token


def change_password(user_id: int, *, current: str, new: str) -> User:
    """The user's own change: the current password first. Every session ends; the caller
    logs the user in again with the returned row."""
    user = User.get_by_id(user_id)
    if not check_password_hash(user.password_hash, current):
        raise WrongPassword("the current password is not right")
    return _set_password(user, new)


def set_password(email: str, password: str) -> User:
    """An operator's reset (`leadbridge set-password`): no current password asked."""
    user = User.get_or_none(User.email == email.strip().lower())
    if user is None:
        raise InvalidInput(f"no user with email {email.strip()}")
    return _set_password(user, password)


def _set_password(user: User, password: str) -> User:
    """Only over the hash read: of two uses of one reset link, one wins."""
    check_new_password(password)
    read, user.password_hash = user.password_hash, generate_password_hash(password)
    user.session_token = new_session_token()
    changed = User.update(password_hash=user.password_hash, session_token=user.session_token
                          ).where(User.id == user.id, User.password_hash == read).execute()
    if changed != 1:
        raise InvalidInput("the password was changed meanwhile")
    return user


def send_reset_link(user_id: int, *, now: datetime) -> User:
    """Email the user a one-time link to set a new password (made when the email is sent)."""
    user = User.get_by_id(user_id)
    if not user.active:
        raise InvalidInput(f"{user.email} is deactivated: activate the user first")
    with transaction():
        queue_email("password_reset", to_address=user.email, now=now,
                    context={"user_id": user.id})
    return user


def _password_stamp(user: User) -> str:
    """Changes with the password, so a reset link works once."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def reset_token(secret: str, user: User) -> str:
    return URLSafeTimedSerializer(secret, salt=RESET_SALT).dumps([user.id, _password_stamp(user)])


def user_for_reset(secret: str, token: str) -> User | None:
    """The active user a reset link names, while it is fresh and the password unchanged."""
    try:
        user_id, stamp = URLSafeTimedSerializer(secret, salt=RESET_SALT).loads(
            token, max_age=RESET_HOURS * 3600)
    except (BadSignature, SignatureExpired, ValueError, TypeError):
        return None
    user = User.get_or_none(User.id == user_id) if isinstance(user_id, int) else None
    if user is None or not user.active or stamp != _password_stamp(user):
        return None
    return user


def reset_password(secret: str, token: str, password: str) -> User:
    user = user_for_reset(secret, token)
    if user is None:
        raise InvalidInput("this reset link is not valid any more: ask an admin for a new one")
    return _set_password(user, password)
