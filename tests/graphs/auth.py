"""LangGraph's documented owner-only custom auth, for the auth tests.

A bearer token `user-<name>` is the user <name>; users whose name starts with
"reader" may not delete threads (a handler returning False → 403).
"""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.startswith("user-"):
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid token")
    identity = token.removeprefix("user-")
    writer = not identity.startswith("reader")
    return {"identity": identity, "permissions": ["delete"] if writer else []}


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Auth.types.FilterType:
    """Stamps the owner on what is created, and sees only what one owns."""
    filters = {"owner": ctx.user.identity}
    metadata = value.setdefault("metadata", {})
    if metadata is None:
        value["metadata"] = metadata = {}
    metadata.update(filters)
    return filters


@auth.on.threads.delete
async def owners_who_may_delete(
    ctx: Auth.types.AuthContext, value: Auth.types.ThreadsDelete
) -> Auth.types.FilterType | bool:
    if "delete" not in ctx.permissions:
        return False
    return {"owner": ctx.user.identity}


def _scoped(identity: str, namespace: Any) -> tuple[str, ...]:
    labels = tuple(namespace) if namespace else ()
    return labels if labels and labels[0] == identity else (identity, *labels)


@auth.on.store
async def scope_store(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> None:
    """LangGraph's documented store handler: every namespace starts with the user."""
    value["namespace"] = _scoped(ctx.user.identity, value.get("namespace"))


@auth.on.store.put
async def writers_scoped(ctx: Auth.types.AuthContext, value: Auth.types.StorePut) -> bool | None:
    """Readers may not write the store; writers' puts are scoped as above."""
    if "delete" not in ctx.permissions:
        return False
    value["namespace"] = _scoped(ctx.user.identity, value["namespace"])
    return None
