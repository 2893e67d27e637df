"""The authenticated user of a request, as custom auth (langgraph_sdk.Auth) describes it.

The API normalises what `@auth.authenticate` returned into one; runs carry it in their
config (`configurable.langgraph_auth_user`, as a dict) and graph factories get it back
as `ServerRuntime.user`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

USER_KEY = "langgraph_auth_user"
USER_ID_KEY = "langgraph_auth_user_id"
PERMISSIONS_KEY = "langgraph_auth_permissions"
RUN_KEYS = frozenset({USER_KEY, USER_ID_KEY, PERMISSIONS_KEY})


class User:
    """LangGraph's BaseUser: identity, display_name, is_authenticated, permissions, and
    item access to every field the authenticate handler returned."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        identity = str(fields["identity"])
        self._fields: dict[str, Any] = {
            **fields,
            "identity": identity,
            "display_name": fields.get("display_name") or identity,
            "is_authenticated": bool(fields.get("is_authenticated", True)),
            "permissions": [str(p) for p in fields.get("permissions") or ()],
        }

    @property
    def identity(self) -> str:
        return str(self._fields["identity"])

    @property
    def display_name(self) -> str:
        return str(self._fields["display_name"])

    @property
    def is_authenticated(self) -> bool:
        return bool(self._fields["is_authenticated"])

    @property
    def permissions(self) -> Sequence[str]:
        return list(self._fields["permissions"])

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def get(self, key: str, default: Any = None) -> Any:
        return self._fields.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._fields)

    def __repr__(self) -> str:
        return f"User(identity={self.identity!r})"


def configurable(user: User) -> dict[str, Any]:
    """What a run made by `user` carries in `config["configurable"]`."""
    return {
        USER_KEY: user.to_dict(),
        USER_ID_KEY: user.identity,
        PERMISSIONS_KEY: list(user.permissions),
    }


def from_config(config: Mapping[str, Any] | None) -> User | None:
    """The user a run's config carries, if a user made it."""
    stored = ((config or {}).get("configurable") or {}).get(USER_KEY)
    return User(stored) if isinstance(stored, Mapping) and "identity" in stored else None
