"""HTTP and websocket routes of the nbfan panel (transport only; logic is in manager.py).

Every route is authenticated like jupyter_server's own: `@tornado.web.authenticated` plus the
authorizer on the REST handlers, `ws_authenticated`, the authorizer and jupyter_server's origin
check on the websocket. See the telemetry contract for the shapes."""

from __future__ import annotations

import json
from typing import Any, cast

import tornado.web
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import url_path_join
from tornado import websocket

from nbfan.exception import InvalidError, NotFoundError
from nbfan.server.manager import NoCluster, TelemetryManager

AUTH_RESOURCE = "nbfan"
MANAGER_KEY = "nbfan_manager"


class _Base(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> TelemetryManager:
        return cast(TelemetryManager, self.settings[MANAGER_KEY])

    async def _answer(self, coro: Any) -> None:
        try:
            result = await coro
        except NoCluster as exc:
            raise tornado.web.HTTPError(503, str(exc)) from None
        except NotFoundError as exc:
            raise tornado.web.HTTPError(404, str(exc)) from None
        except InvalidError as exc:
            raise tornado.web.HTTPError(400, str(exc)) from None
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(result))


class ClusterHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """GET /nbfan/api/cluster -> ClusterSnapshot"""
        await self._answer(self.manager.cluster())


class CallsHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        """GET /nbfan/api/calls -> CallsSnapshot"""
        await self._answer(self.manager.calls())


class CancelHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def post(self, call_id: str) -> None:
        """POST /nbfan/api/calls/{call_id}/cancel -> {"cancelled": bool}"""

        async def cancel() -> dict[str, bool]:
            return {"cancelled": await self.manager.cancel(call_id)}

        await self._answer(cancel())


class CallDetailHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self, call_id: str) -> None:
        """GET /nbfan/api/calls/{call_id} -> {"call_id", "failures": [...], "lines": [...], "held"}"""
        await self._answer(self.manager.detail(call_id))


class StreamHandler(WebSocketMixin, websocket.WebSocketHandler, JupyterHandler):
    """WS /nbfan/api/stream: pushes {"type": "calls", ...} and {"type": "cluster", ...}, and
    {"type": "detail", ...} of the call the panel asked to watch ({"type": "watch", "call_id": ...})."""

    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> TelemetryManager:
        return cast(TelemetryManager, self.settings[MANAGER_KEY])

    async def pre_get(self) -> None:
        user = self.current_user
        if not await ensure_async(self.authorizer.is_authorized(self, user, "read", AUTH_RESOURCE)):
            raise tornado.web.HTTPError(403)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.pre_get()
        res = super().get(*args, **kwargs)
        if res is not None:
            await res

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.manager.add_socket(self)

    def on_message(self, message: Any) -> None:
        """{"type": "watch", "call_id": ID or null}: push that call's detail (failed inputs, latest
        output lines) with the calls; anything else is ignored."""
        try:
            parsed = json.loads(message)
        except (TypeError, ValueError):
            return
        if isinstance(parsed, dict) and parsed.get("type") == "watch":
            call_id = parsed.get("call_id")
            self.manager.watch(self, call_id if isinstance(call_id, str) and call_id.isalnum() else None)

    def on_close(self) -> None:
        self.manager.remove_socket(self)

    def send_json(self, message: dict[str, Any]) -> bool:
        """False once the socket is gone (the manager then forgets it)."""
        try:
            self.write_message(json.dumps(message))
            return True
        except websocket.WebSocketClosedError:
            return False


CALL_ID = r"(?P<call_id>[0-9a-f]{1,64})"


def route_patterns() -> list[tuple[str, type]]:
    """Routes relative to base_url (the test enumerating routes checks each one refuses
    requests without the token)."""
    return [
        ("nbfan/api/cluster", ClusterHandler),
        ("nbfan/api/calls", CallsHandler),
        (f"nbfan/api/calls/{CALL_ID}/cancel", CancelHandler),
        (f"nbfan/api/calls/{CALL_ID}", CallDetailHandler),
        ("nbfan/api/stream", StreamHandler),
    ]


def setup_handlers(web_app: Any, manager: TelemetryManager) -> None:
    web_app.settings[MANAGER_KEY] = manager
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base_url, path), handler) for path, handler in route_patterns()])
