"""The signed-in user without a database query: `CachedModelBackend.get_user` reads a copy
of the user's row from the cache (booking_site.sessions.copies: same generations, same
fallback to the database while the cache is down).

What makes the copy safe to act on:
- Saving or deleting a user drops the copy (post_save/post_delete, and again once the
  transaction commits), so deactivating a user, changing a password or a staff flag takes
  effect on the next request in every process. A change that sends no signal
  (`QuerySet.update`, SQL) is seen once the copy expires, after at most COPY_SECONDS.
- The copy holds no password hash, only the session hash Django checks each request
  against (an HMAC of the hash under SECRET_KEY): the cache is not one more place to steal
  hashes from. `password` is a deferred field of the user it rebuilds, read from the
  database if something needs it (checking the old password in the password change form).
- Saving a rebuilt user writes the caller's changes, and the database's current value for
  every field the caller did not touch, never the copy's possibly outdated one.

Permissions (the admin) are read from the database as ModelBackend does.

The receivers below are connected when this module is imported: import it in an
AppConfig.ready so that processes which never authenticate (management commands) drop
copies too.
"""

import functools
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_logged_in
from django.db import router, transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.utils.crypto import salted_hmac

from booking_site.sessions import copies, read_ahead, user_copy_key

UserModel = get_user_model()

# How long a user's copy lives in the cache: the longest a change that bypasses the
# signals (QuerySet.update, SQL) goes unseen.
COPY_SECONDS = 60
# Keys of a rebuilt user's __dict__.
_LOADED = "_copy_as_loaded"  # the fields as the copy had them
_SESSION_HASH = "get_session_auth_hash"  # shadows the method while `password` is deferred


def _secret_digest() -> str:
    """Tells copies made under another SECRET_KEY (during its rotation) apart: their
    session hash would not match this process's sessions."""
    return _digest_of(settings.SECRET_KEY)


@functools.lru_cache(maxsize=4)
def _digest_of(secret: str) -> str:
    return salted_hmac("booking_site.auth_cache", "session hash secret", secret=secret).hexdigest()[
        :16
    ]


def _copied_fields() -> list[str]:
    return [f.attname for f in UserModel._meta.concrete_fields if f.attname != "password"]


def _copy_of(user: User) -> dict[str, Any]:
    row = {name: getattr(user, name) for name in _copied_fields()}
    return {
        "row": row,
        "session_hash": user.get_session_auth_hash(),
        "secret": _secret_digest(),
    }


class _KnownSessionHash:
    """The user's session hash from the copy, until the password itself is loaded (then
    it is computed from that, as Django does: set_password must change it)."""

    def __init__(self, user: User, known: str) -> None:
        self.user = user
        self.known = known

    def __call__(self) -> str:
        if "password" in self.user.__dict__:
            return type(self.user).get_session_auth_hash(self.user)
        return self.known


def _rebuild(copy: dict[str, Any]) -> User:
    row: dict[str, Any] = copy["row"]
    names = [name for name in _copied_fields() if name in row]
    user = UserModel.from_db(router.db_for_read(UserModel), names, [row[n] for n in names])
    user.__dict__[_LOADED] = dict(row)
    user.__dict__[_SESSION_HASH] = _KnownSessionHash(user, copy["session_hash"])
    return user


def cached_user(user_id: Any) -> User | None:
    """The user with this primary key, from its cache copy or else the database (which
    then refreshes the copy); None if there is no such user."""
    key = user_copy_key(user_id)
    # Usually read with the session, in the same round trip.
    lookup = read_ahead(key) or copies.get(key)
    if lookup.found and lookup.value.get("secret") == _secret_digest():
        return _rebuild(lookup.value)
    try:
        user = UserModel._default_manager.get(pk=user_id)
    except UserModel.DoesNotExist:
        return None
    copies.fill(key, _copy_of(user), COPY_SECONDS, lookup)
    return user


class CachedModelBackend(ModelBackend):
    """ModelBackend, with the signed-in user read from its cache copy."""

    def get_user(self, user_id: Any) -> User | None:
        user = cached_user(user_id)
        return user if user is not None and self.user_can_authenticate(user) else None

    async def aget_user(self, user_id: Any) -> User | None:
        return await sync_to_async(self.get_user)(user_id)


def _refresh_untouched_fields(
    sender: type[User],
    instance: User,
    update_fields: frozenset[str] | None,
    **kwargs: Any,
) -> None:
    """Before a rebuilt user is saved, reloads from the database the fields about to be
    written that the caller left as the copy had them."""
    loaded: dict[str, Any] | None = instance.__dict__.pop(_LOADED, None)
    instance.__dict__.pop(_SESSION_HASH, None)
    if loaded is None or kwargs.get("raw"):
        return
    attnames = {f.name: f.attname for f in UserModel._meta.concrete_fields if not f.primary_key}
    saving = (
        attnames.values()
        if update_fields is None
        else [attnames[n] for n in update_fields if n in attnames]
    )
    untouched = [
        name
        for name in saving
        if name in loaded and name in instance.__dict__ and instance.__dict__[name] == loaded[name]
    ]
    if untouched:
        instance.refresh_from_db(fields=untouched)


def _drop_copy(sender: type[User], instance: User, **kwargs: Any) -> None:
    key = user_copy_key(instance.pk)
    copies.delete(key)
    # Inside a transaction a request may still read the old row and copy it in before the
    # commit: drop the copy again after it.
    using = kwargs.get("using") or router.db_for_write(UserModel)
    if transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(lambda: copies.delete(key), using=using)


def _copy_on_login(sender: type[User], user: User, **kwargs: Any) -> None:
    """Copies the user as they sign in, so their first request finds the copy too (and can
    be answered on the event loop, booking_site.loop_bookings). From the database's row,
    not the signed-in instance, and only into an empty key (`cached_user`): a deactivation
    or password change saved while the password was being checked is not undone."""
    cached_user(user.pk)


pre_save.connect(_refresh_untouched_fields, sender=UserModel, dispatch_uid=__name__ + ".refresh")
post_save.connect(_drop_copy, sender=UserModel, dispatch_uid=__name__ + ".drop_saved")
post_delete.connect(_drop_copy, sender=UserModel, dispatch_uid=__name__ + ".drop_deleted")
# After Django's own update_last_login (connected first), whose save drops the copy.
user_logged_in.connect(_copy_on_login, dispatch_uid=__name__ + ".copy_on_login")
