"""A fake Discord on 127.0.0.1: the REST routes and the gateway events the bot's tests need.

It runs an aiohttp server on its own event loop in a thread, so a test drives it with plain calls:
users write DMs, mention the bot, run slash commands and press buttons (each becomes a gateway
event), and the test waits for what the bot sent (each REST call the bot makes is recorded).
Only what discord.py 2.x reads is implemented; anything else answers 404 and is kept in
``unhandled`` so a test that needs it fails loudly instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import WSMsgType, web

from tests.fake_discord import payloads as p
from tests.fake_discord.payloads import JSON

HELLO, HEARTBEAT, IDENTIFY, HEARTBEAT_ACK, DISPATCH = 10, 1, 2, 11, 0
# Interaction callback types (https://discord.com/developers/docs/interactions/receiving-and-responding)
MESSAGE, DEFERRED_MESSAGE, DEFERRED_UPDATE, UPDATE_MESSAGE = 4, 5, 6, 7
LOADING = 1 << 7  # message flag: the "bearbot is thinking…" placeholder of a deferred response
File = tuple[str, bytes, str | None]  # filename, bytes, content type


@dataclass
class Sent:
    """One thing the bot did: ``kind`` is "create", "edit" or "callback" (an interaction response)."""

    kind: str
    message: JSON | None
    interaction_id: str | None = None
    callback_type: int | None = None

    @property
    def text(self) -> str:
        return (self.message or {}).get("content", "")

    @property
    def ephemeral(self) -> bool:
        return bool((self.message or {}).get("flags", 0) & p.EPHEMERAL)

    @property
    def custom_ids(self) -> list[str]:
        rows = (self.message or {}).get("components", [])
        return [c["custom_id"] for row in rows for c in row.get("components", []) if "custom_id" in c]


@dataclass
class _Interaction:
    payload: JSON
    responded: bool = False
    original: str | None = None  # the message id of the response, once there is one


@dataclass
class FakeDiscord:
    """One guild (``bear spotters`` with a text channel), DMs, and one application: the bot."""

    attachment_size_limit: int = 10 * 1024 * 1024
    token: str = "fake-bot-token"
    sent: list[Sent] = field(default_factory=list)
    commands: dict[str, list[JSON]] = field(default_factory=dict)  # "global" or a guild id → synced commands
    unhandled: list[str] = field(default_factory=list)
    identifies: list[JSON] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)  # attachment ids fetched from the CDN
    cdn_down: bool = False  # attachments answer 503, as when Discord's CDN has an outage

    def __post_init__(self) -> None:
        self.app_id = p.snowflake()
        self.bot = p.user(self.app_id, "bearbot", bot=True)
        self.guild_id, self.channel_id, self.admin_role_id = p.snowflake(), p.snowflake(), p.snowflake()
        self.roles = [p.role(self.guild_id, "@everyone", 0), p.role(self.admin_role_id, "bear keepers", 1)]
        self.members: dict[str, JSON] = {self.app_id: p.member(self.bot, [])}
        self.dms: dict[str, JSON] = {}  # user id → DM channel
        self.messages: dict[str, JSON] = {}
        self.files: dict[str, tuple[bytes, str | None]] = {}
        self._interactions: dict[str, _Interaction] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = 0
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        """What discord.py's ``Route.BASE`` must be to call this fake."""
        return f"{self.url}/api/v10"

    def start(self) -> FakeDiscord:
        started = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-discord", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise TimeoutError("fake Discord did not start")
        return self

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._auth])
        v = "/api/v10"
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/{aid}/{name}", self._cdn)
        app.router.add_get(f"{v}/users/@me", self._me)
        app.router.add_get(f"{v}/oauth2/applications/@me", self._app_info)
        app.router.add_get(f"{v}/gateway/bot", self._gateway_bot)
        app.router.add_put(f"{v}/applications/{{app}}/commands", self._sync)
        app.router.add_put(f"{v}/applications/{{app}}/guilds/{{guild}}/commands", self._sync)
        app.router.add_post(f"{v}/users/@me/channels", self._open_dm)
        app.router.add_post(f"{v}/channels/{{cid}}/messages", self._create)
        app.router.add_patch(f"{v}/channels/{{cid}}/messages/{{mid}}", self._edit)
        app.router.add_post(f"{v}/interactions/{{iid}}/{{token}}/callback", self._callback)
        app.router.add_post(f"{v}/webhooks/{{app}}/{{token}}", self._followup)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what a test does ---------------------------------------------------------------------
    def add_user(self, name: str, *, admin_role: bool = False) -> JSON:
        """A guild member (with the "bear keepers" role when ``admin_role``)."""
        who = p.user(p.snowflake(), name)
        self.members[who["id"]] = p.member(who, [self.admin_role_id] if admin_role else [])
        return who

    def upload(self, filename: str, data: bytes, content_type: str | None = "image/jpeg") -> JSON:
        """An attachment a user sent, served back at its CDN URL."""
        aid = p.snowflake()
        self.files[aid] = (data, content_type)
        return p.attachment(aid, filename, len(data), f"{self.url}/cdn/{aid}/{filename}", content_type)

    def dm(self, who: JSON, *, content: str = "", files: Iterable[File] = ()) -> JSON:
        """``who`` writes to the bot in a DM."""
        channel = self._dm_channel(who)
        msg = p.message(p.snowflake(), channel["id"], who, content=content, attachments=self._uploads(files))
        return self._incoming(msg)

    def say(self, who: JSON, *, content: str = "", files: Iterable[File] = (), mention: bool = True) -> JSON:
        """``who`` writes in the guild's text channel, mentioning the bot when ``mention``."""
        text = f"<@{self.app_id}> {content}".strip() if mention else content
        msg = p.message(
            p.snowflake(), self.channel_id, who, content=text, guild_id=self.guild_id,
            member_json=self.members[who["id"]], attachments=self._uploads(files),
            mentions=[self.bot] if mention else [],
        )
        return self._incoming(msg)

    def slash(
        self, who: JSON, name: str, options: dict[str, Any] | None = None, *, files: dict[str, File] | None = None,
        in_dm: bool = False,
    ) -> str:
        """``who`` runs ``/name``; ``files`` maps attachment options to files. Returns the interaction id."""
        command = self._command(name)
        opts = [{"name": k, "type": self._option_type(command, k), "value": v} for k, v in (options or {}).items()]
        resolved: JSON = {}
        for option, file in (files or {}).items():
            att = self._uploads([file])[0]
            opts.append({"name": option, "type": 11, "value": att["id"]})
            resolved.setdefault("attachments", {})[att["id"]] = att
        data = {"id": command["id"], "name": name, "type": 1, "options": opts, "resolved": resolved}
        return self._interact(who, 2, data, in_dm=in_dm)

    def context_menu(self, who: JSON, name: str, target: JSON) -> str:
        """``who`` runs the message command ``name`` on ``target``."""
        command = self._command(name)
        data = {
            "id": command["id"], "name": name, "type": 3, "target_id": target["id"],
            "resolved": {"messages": {target["id"]: target}},
        }
        return self._interact(who, 2, data, in_dm=target.get("guild_id") is None, channel_id=target["channel_id"])

    def press(self, who: JSON, message: JSON, custom_id: str, *, values: list[str] | None = None) -> str:
        """``who`` presses a button (or picks ``values`` in a select menu) under ``message``."""
        data: JSON = {"custom_id": custom_id, "component_type": 2 if values is None else 3}
        if values is not None:
            data["values"] = values
        return self._interact(
            who, 3, data, in_dm=message.get("guild_id") is None, channel_id=message["channel_id"],
            message_json=self.messages.get(message["id"], message),
        )

    def wait_for(self, check: Callable[[Sent], bool], *, timeout: float = 30.0) -> Sent:
        """The first thing the bot sent that passes ``check`` (already sent, or within ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for item in self.sent:
                    if check(item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"nothing matched; sent: {[(s.kind, s.text[:60]) for s in self.sent]}; "
                                       f"unhandled: {self.unhandled}")
                self._cond.wait(left)

    def wait_connected(self, sessions: int = 1, *, timeout: float = 60.0) -> None:
        """Until ``sessions`` bots in all have identified on the gateway (they can receive events from then)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.identifies) >= sessions, timeout):
                raise TimeoutError(f"{len(self.identifies)} of {sessions} gateway sessions identified")

    def answer(self, message: JSON, *, timeout: float = 30.0) -> Sent:
        """The bot's reply to a user's ``message``."""
        return self.wait_for(
            lambda s: s.kind == "create" and (s.message or {}).get("message_reference", {}).get("message_id") == message["id"],
            timeout=timeout,
        )

    def response(self, interaction_id: str, *, timeout: float = 30.0, nth: int = 0) -> Sent:
        """The ``nth`` message the bot sent in answer to an interaction (response or follow-up)."""
        seen: list[Sent] = []

        def check(s: Sent) -> bool:
            if s.interaction_id == interaction_id and s.message is not None and s.message not in [x.message for x in seen]:
                seen.append(s)
            return len(seen) > nth

        self.wait_for(check, timeout=timeout)
        return seen[nth]

    def message(self, mid: str) -> JSON:
        with self._cond:
            return self.messages[mid]

    # --- plumbing for the test side -------------------------------------------------------------
    def _dm_channel(self, who: JSON) -> JSON:
        if who["id"] not in self.dms:
            self.dms[who["id"]] = p.dm_channel(p.snowflake(), who)
        return self.dms[who["id"]]

    def _uploads(self, files: Iterable[File]) -> list[JSON]:
        return [self.upload(name, data, ctype) for name, data, ctype in files]

    def _incoming(self, msg: JSON) -> JSON:
        with self._cond:
            self.messages[msg["id"]] = msg
        self._dispatch("MESSAGE_CREATE", msg)
        return msg

    def _command(self, name: str) -> JSON:
        for commands in self.commands.values():
            for command in commands:
                if command["name"] == name:
                    return command
        raise KeyError(f"the bot registered no command {name!r}; it has {self.commands}")

    @staticmethod
    def _option_type(command: JSON, name: str) -> int:
        return next(o["type"] for o in command.get("options", []) if o["name"] == name)

    def _interact(
        self, who: JSON, kind: int, data: JSON, *, in_dm: bool, channel_id: str | None = None,
        message_json: JSON | None = None,
    ) -> str:
        if in_dm:
            channel, guild_id = self._dm_channel(who), None
        else:
            channel, guild_id = p.text_channel(channel_id or self.channel_id, self.guild_id, "bears"), self.guild_id
        iid = p.snowflake()
        payload = p.interaction(
            iid, secrets.token_urlsafe(16), self.app_id, kind, data, who=who, channel=channel, guild_id=guild_id,
            member_json={**self.members[who["id"]], "permissions": "0"} if guild_id else None,
            attachment_size_limit=self.attachment_size_limit, message_json=message_json,
        )
        with self._cond:
            self._interactions[iid] = _Interaction(payload)
        self._dispatch("INTERACTION_CREATE", payload)
        return iid

    def _dispatch(self, event: str, data: JSON) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._send_event(event, data), self._loop).result(10)

    async def _send_event(self, event: str, data: JSON) -> None:
        if not self._sockets:
            raise RuntimeError("no bot is connected to the fake gateway")
        self._seq += 1
        for ws in self._sockets:
            await ws.send_str(json.dumps({"op": DISPATCH, "t": event, "s": self._seq, "d": data}))

    def _record(self, item: Sent) -> None:
        with self._cond:
            if item.message is not None:
                self.messages[item.message["id"]] = item.message
            self.sent.append(item)
            self._cond.notify_all()

    # --- gateway ------------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": HELLO, "d": {"heartbeat_interval": 45000}})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                break
            frame = json.loads(msg.data)
            if frame["op"] == HEARTBEAT:
                await ws.send_json({"op": HEARTBEAT_ACK})
            elif frame["op"] == IDENTIFY:
                if frame["d"].get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                with self._cond:
                    self.identifies.append(frame["d"])
                    self._cond.notify_all()
                self._sockets.append(ws)
                await self._send_event("READY", {
                    "v": 10, "user": self.bot, "guilds": [{"id": self.guild_id, "unavailable": True}],
                    "session_id": secrets.token_hex(8), "resume_gateway_url": f"ws://127.0.0.1:{self.port}/gateway",
                    "application": {"id": self.app_id, "flags": 0}, "shard": [0, 1],
                })
                await self._send_event("GUILD_CREATE", p.guild(
                    self.guild_id, "bear spotters", owner_id=self.app_id, roles=self.roles,
                    channels=[p.text_channel(self.channel_id, self.guild_id, "bears")],
                    members=list(self.members.values()),
                ))
        if ws in self._sockets:
            self._sockets.remove(ws)
        return ws

    # --- REST -----------------------------------------------------------------------------------
    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # Interaction callbacks and webhooks authenticate by the token in their URL, as on Discord.
        open_paths = ("/gateway", "/cdn/", "/api/v10/interactions/", "/api/v10/webhooks/")
        if not request.path.startswith(open_paths) and request.headers.get("Authorization") != f"Bot {self.token}":
            return self._json({"message": "401: Unauthorized", "code": 0}, status=401)
        return await handler(request)

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        # Exactly "application/json", no charset: discord.py parses a body as JSON only then, as Discord sends.
        return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unhandled.append(f"{request.method} {request.path}")
        return self._json({"message": "404: Not Found", "code": 0}, status=404)

    async def _me(self, _request: web.Request) -> web.Response:
        return self._json(self.bot)

    async def _app_info(self, _request: web.Request) -> web.Response:
        return self._json({
            "id": self.app_id, "name": "bearbot", "icon": None, "description": "", "bot_public": True,
            "bot_require_code_grant": False, "verify_key": "0" * 64, "owner": p.user(p.snowflake(), "owner"),
            "flags": 0, "interactions_endpoint_url": None,
        })

    async def _gateway_bot(self, _request: web.Request) -> web.Response:
        return self._json({
            "url": f"ws://127.0.0.1:{self.port}/gateway", "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
        })

    async def _sync(self, request: web.Request) -> web.Response:
        scope = request.match_info.get("guild", "global")
        commands = [
            {"id": p.snowflake(), "application_id": self.app_id, "version": "1", "type": 1, "description": "",
             **command}
            for command in await request.json()
        ]
        with self._cond:
            self.commands[scope] = commands
            self._cond.notify_all()
        return self._json(commands)

    async def _open_dm(self, request: web.Request) -> web.Response:
        uid = (await request.json())["recipient_id"]
        return self._json(self._dm_channel(self.members[str(uid)]["user"]))

    async def _cdn(self, request: web.Request) -> web.Response:
        if self.cdn_down:
            return web.Response(status=503, text="upstream connect error")
        data, ctype = self.files[request.match_info["aid"]]
        self.downloads.append(request.match_info["aid"])
        return web.Response(body=data, content_type=ctype or "application/octet-stream")

    async def _body(self, request: web.Request) -> JSON:
        """A JSON body, or a multipart one (``payload_json`` and ``files[n]``): files become attachments."""
        if not request.content_type.startswith("multipart/"):
            return await request.json()
        body: JSON = {}
        uploads: list[JSON] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if part.name == "payload_json":
                body = json.loads(await part.text())  # type: ignore[union-attr]
            else:
                data = await part.read()  # type: ignore[union-attr]
                uploads.append(self.upload(part.filename or "file", bytes(data), part.headers.get("Content-Type")))  # type: ignore[union-attr]
        body["attachments"] = uploads
        return body

    def _bot_message(self, channel_id: str, body: JSON, *, mid: str | None = None, **extra: Any) -> JSON:
        ref = (body.get("message_reference") or {}).get("message_id")
        return p.message(
            mid or p.snowflake(), channel_id, self.bot, content=body.get("content") or "",
            attachments=body.get("attachments"), components=body.get("components"), flags=body.get("flags") or 0,
            reference=str(ref) if ref else None, **extra,
        )

    async def _create(self, request: web.Request) -> web.Response:
        msg = self._bot_message(request.match_info["cid"], await self._body(request))
        self._record(Sent("create", msg))
        return self._json(msg)

    def _apply_edit(self, mid: str, body: JSON, interaction_id: str | None = None) -> JSON | None:
        old = self.messages.get(mid)
        if old is None:
            return None
        new = dict(old)
        for key in ("content", "components", "flags"):  # attachments stay: the bot never changes them
            if key in body and body[key] is not None:
                new[key] = body[key]
        new["edited_timestamp"] = p.now()
        self._record(Sent("edit", new, interaction_id))
        return new

    async def _edit(self, request: web.Request) -> web.Response:
        new = self._apply_edit(request.match_info["mid"], await self._body(request))
        return self._json(new) if new else self._json({"message": "Unknown Message", "code": 10008}, status=404)

    def _by_token(self, token: str) -> tuple[str, _Interaction]:
        for iid, item in self._interactions.items():
            if item.payload["token"] == token:
                return iid, item
        raise web.HTTPNotFound(body=b'{"message": "Unknown Webhook", "code": 10015}', content_type="application/json")

    async def _callback(self, request: web.Request) -> web.Response:
        iid = request.match_info["iid"]
        item = self._interactions.get(iid)
        if item is None or item.payload["token"] != request.match_info["token"]:
            return self._json({"message": "Unknown interaction", "code": 10062}, status=404)
        if item.responded:
            return self._json({"message": "Interaction has already been acknowledged.", "code": 40060}, status=400)
        item.responded = True
        body = await self._body(request)
        kind, data = body["type"], body.get("data") or {}
        if "attachments" in body:
            data["attachments"] = body["attachments"]
        channel_id = item.payload["channel_id"]
        metadata = {"id": iid, "type": item.payload["type"], "user": self._actor(item.payload), "authorizing_integration_owners": {}}
        message: JSON | None = None
        if kind == MESSAGE:
            message = self._bot_message(channel_id, data, interaction_metadata=metadata)
            self._record(Sent("callback", message, iid, kind))
        elif kind == DEFERRED_MESSAGE:
            flags = data.get("flags") or 0
            message = self._bot_message(channel_id, {"content": "", "flags": flags | LOADING}, interaction_metadata=metadata)
            with self._cond:
                self.messages[message["id"]] = message
            self._record(Sent("callback", None, iid, kind))
        elif kind in (UPDATE_MESSAGE, DEFERRED_UPDATE):
            target = item.payload["message"]["id"]
            message = self._apply_edit(target, data, iid) if kind == UPDATE_MESSAGE else self.messages.get(target)
            if kind == DEFERRED_UPDATE:
                self._record(Sent("callback", None, iid, kind))
        else:
            self._record(Sent("callback", None, iid, kind))
        if message is not None and kind in (MESSAGE, DEFERRED_MESSAGE):
            item.original = message["id"]
        interaction = {"id": iid, "type": item.payload["type"], "response_message_id": message["id"] if message else None,
                       "response_message_loading": kind == DEFERRED_MESSAGE,
                       "response_message_ephemeral": bool(message and message["flags"] & p.EPHEMERAL)}
        resource: JSON = {"type": kind}
        if message is not None and kind != DEFERRED_MESSAGE:
            resource["message"] = message
        return self._json({"interaction": interaction, "resource": resource})

    @staticmethod
    def _actor(payload: JSON) -> JSON:
        return payload["member"]["user"] if "member" in payload else payload["user"]

    async def _followup(self, request: web.Request) -> web.Response:
        iid, item = self._by_token(request.match_info["token"])
        body = await self._body(request)
        # The first follow-up after a "thinking…" defer replaces that placeholder, as on Discord.
        placeholder = self.messages.get(item.original or "")
        if placeholder is not None and placeholder["flags"] & LOADING:
            body["flags"] = (body.get("flags") or 0) | (placeholder["flags"] & p.EPHEMERAL)
            msg = self._bot_message(placeholder["channel_id"], body, mid=placeholder["id"],
                                    interaction_metadata=placeholder.get("interaction_metadata"))
        else:
            msg = self._bot_message(item.payload["channel_id"], body)
        self._record(Sent("create", msg, iid))
        return self._json(msg)
