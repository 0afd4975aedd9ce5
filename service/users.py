"""Panel users: creation and password checks (hashed with werkzeug's scrypt)."""

from __future__ import annotations

from datetime import datetime

import peewee
from werkzeug.security import check_password_hash, generate_password_hash

from .db import transaction
from .errors import InvalidInput
from .intake import normalise_email
from .models import User

MIN_PASSWORD = 10


def create_user(email: str, *, role: str, password: str, now: datetime) -> User:
    email = normalise_email(email)
    if role not in User.ROLES:
        raise InvalidInput(f"role must be one of {', '.join(User.ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD} characters")
    try:
        with transaction():
            return User.create(email=email, role=role, created_at=now,
                               password_hash=generate_password_hash(password))
    except peewee.IntegrityError:
        raise InvalidInput(f"a user with email {email} exists") from None


def authenticate(email: str, password: str) -> User | None:
    user = User.get_or_none(User.email == email.strip().lower())
    if user is None or not user.active or not check_password_hash(user.password_hash, password):
        return None
    return user
