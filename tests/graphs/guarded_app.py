"""A custom route that custom auth covers (`http.enable_custom_route_auth` in auth.json)."""

from __future__ import annotations

from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/greeting")
async def greeting(request: Request) -> dict[str, str]:
    return {"hello": "custom route"}
