"""A small in-memory Telegram Bot API server on 127.0.0.1 (stdlib ``http.server`` in a thread).

The real python-telegram-bot talks to it over HTTP exactly as it would to Telegram: the
Telegram end-to-end tests and the benches use it. It implements the methods
this bot calls, hands out updates through ``getUpdates`` (long polling), serves uploaded
files through ``getFile`` and the file URL, and records everything the bot sends.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

JSONDict = dict[str, Any]

# Parameters PTB sends JSON-encoded; everything else (text, caption, ids as strings…) is raw.
_JSON_PARAMS = frozenset(
    {
        "chat_id", "message_id", "reply_markup", "reply_parameters", "reply_to_message_id", "offset", "limit",
        "timeout", "commands", "scope", "show_alert", "allowed_updates", "drop_pending_updates", "entities",
        "caption_entities", "disable_notification", "cache_time",
    }
)


@dataclass
class Sent:
    """One message the bot sent (or its latest edited state)."""

    method: str
    chat_id: int
    message_id: int
    text: str | None
    reply_to: int | None
    reply_markup: JSONDict | None
    photo: bytes | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """``(text, callback_data)`` of every inline button, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b.get("text", ""), b.get("callback_data", "")) for row in rows for b in row]


@dataclass
class StoredFile:
    data: bytes
    declared_size: int | None
    path: str


class FakeBotApi:
    """The server's state and the helpers to feed it updates and read what the bot did."""

    def __init__(self, *, token: str = "123456:FAKE-TOKEN", bot_id: int = 123456, bot_username: str = "bearbot_local_bot") -> None:
        self.token = token
        self.bot = {"id": bot_id, "is_bot": True, "first_name": "bearbot", "username": bot_username,
                    "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
        self._cond = threading.Condition()
        self._updates: list[JSONDict] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self.files: dict[str, StoredFile] = {}
        self.messages: dict[tuple[int, int], JSONDict] = {}  # every message, user's and bot's, by (chat, id)
        self.sent: list[Sent] = []
        self.edits: list[Sent] = []
        self.calls: list[tuple[str, JSONDict]] = []
        self.callback_answers: list[JSONDict] = []
        self.confirmed_offset = 0
        self.file_limit = 20 * 1024 * 1024  # Telegram's cloud Bot API refuses getFile above this
        self.on_event: Callable[[str, Sent | JSONDict], None] | None = None
        self._failures: dict[str, list[int]] = {}  # method → queued retry_after values (flood tests)
        self.unreachable: set[int] = set()  # users who never opened a private chat with the bot (403)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> str:
        """Serve on an ephemeral 127.0.0.1 port; returns the root URL (``TELEGRAM_API_URL``)."""
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-bot-api", daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBotApi:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- feeding updates ----------------------------------------------------------------
    def add_file(self, data: bytes, *, declared_size: int | None = -1, suffix: str = "jpg") -> str:
        """Store bytes the bot can fetch; ``declared_size`` None hides the size, -1 means the true size."""
        n = next(self._file_ids)
        file_id = f"file{n}"
        size = len(data) if declared_size == -1 else declared_size
        self.files[file_id] = StoredFile(data=data, declared_size=size, path=f"files/{file_id}.{suffix}")
        return file_id

    def push_update(self, payload: JSONDict) -> int:
        """Queue one update (``payload`` is the update minus its id); returns the update id."""
        with self._cond:
            update_id = next(self._update_ids)
            self._updates.append({"update_id": update_id, **payload})
            self._cond.notify_all()
            return update_id

    def user_message(
        self,
        user: JSONDict,
        *,
        chat: JSONDict | None = None,
        text: str | None = None,
        photo: bytes | None = None,
        document: bytes | None = None,
        mime_type: str = "image/jpeg",
        file_name: str = "image.jpg",
        declared_size: int | None = -1,
        sticker: bool = False,
        reply_to: int | None = None,
        media_group_id: str | None = None,
    ) -> JSONDict:
        """Build a message from ``user`` (with uploaded files registered) and remember it."""
        chat = chat or {"id": user["id"], "type": "private", "first_name": user.get("first_name", "")}
        with self._cond:
            message_id = next(self._message_ids)
        msg: JSONDict = {"message_id": message_id, "date": int(time.time()), "chat": chat, "from": user}
        if text is not None:
            msg["text"] = text
            if text.startswith("/"):
                msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        if photo is not None:
            file_id = self.add_file(photo, declared_size=declared_size)
            size = self.files[file_id].declared_size
            msg["photo"] = [{"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 400, "height": 300,
                             **({"file_size": size} if size is not None else {})}]
        if document is not None:
            file_id = self.add_file(document, declared_size=declared_size, suffix=file_name.rsplit(".", 1)[-1])
            size = self.files[file_id].declared_size
            msg["document"] = {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_name": file_name,
                               "mime_type": mime_type, **({"file_size": size} if size is not None else {})}
        if sticker:
            msg["sticker"] = {"file_id": "sticker1", "file_unique_id": "usticker1", "type": "regular", "width": 512,
                              "height": 512, "is_animated": False, "is_video": False}
        if reply_to is not None:
            replied = self.messages.get((chat["id"], reply_to))
            if replied is not None:
                msg["reply_to_message"] = replied
        if media_group_id is not None:
            msg["media_group_id"] = media_group_id
        with self._cond:
            self.messages[(chat["id"], message_id)] = msg
        return msg

    def send_user_message(self, user: JSONDict, **kwargs: Any) -> JSONDict:
        """Build a user message and queue it as an update; returns the message."""
        msg = self.user_message(user, **kwargs)
        self.push_update({"message": msg})
        return msg

    def press_button(self, user: JSONDict, sent: Sent, data: str) -> str:
        """Queue a callback query as if ``user`` tapped the button with ``data`` under ``sent``."""
        with self._cond:
            query_id = f"cq{next(self._callback_ids)}"
            message = self.messages[(sent.chat_id, sent.message_id)]
        self.push_update({"callback_query": {"id": query_id, "from": user, "chat_instance": "ci",
                                             "data": data, "message": message}})
        return query_id

    def fail_next(self, method: str, *, retry_after: int) -> None:
        """Answer the next ``method`` call with a 429 flood-control error."""
        with self._cond:
            self._failures.setdefault(method, []).append(retry_after)

    # --- observing ---------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[Sent], bool], *, timeout: float = 30.0, count: int = 1) -> list[Sent]:
        """Block until ``count`` sent messages match ``predicate``; returns them (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [s for s in self.sent if predicate(s)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    texts = [s.text for s in self.sent[-10:]]
                    raise AssertionError(f"timed out waiting for {count} matching message(s); last sent: {texts}")
                self._cond.wait(left)

    def replies_to(self, message_id: int) -> list[Sent]:
        with self._cond:
            return [s for s in self.sent if s.reply_to == message_id]

    def pending_updates(self) -> int:
        """Updates not yet confirmed by the bot (fetched-and-acknowledged ones are gone)."""
        with self._cond:
            return len(self._updates)

    # --- the API ---------------------------------------------------------------------------
    def call(self, method: str, params: JSONDict) -> tuple[int, JSONDict]:
        """Dispatch one Bot API method; returns (HTTP status, JSON body)."""
        with self._cond:
            self.calls.append((method, params))
            failures = self._failures.get(method)
            if failures:
                retry = failures.pop(0)
                return 429, {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry}",
                             "parameters": {"retry_after": retry}}
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            if method in ("deleteWebhook", "setWebhook", "setMyCommands", "deleteMyCommands", "sendChatAction",
                          "close", "logOut"):
                return 200, {"ok": True, "result": True}
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        try:
            return 200, {"ok": True, "result": handler(params)}
        except _ApiError as exc:
            return exc.code, {"ok": False, "error_code": exc.code, "description": exc.description}

    def _api_getMe(self, _params: JSONDict) -> JSONDict:
        return self.bot

    def _api_getUpdates(self, params: JSONDict) -> list[JSONDict]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset:
                self.confirmed_offset = max(self.confirmed_offset, offset)
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                self._cond.notify_all()
            while not self._updates and self._server is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
            limit = int(params.get("limit") or 100)
            return list(self._updates[:limit])

    def _bot_message(self, method: str, params: JSONDict, *, text_key: str, photo: bytes | None = None) -> JSONDict:
        chat_id = int(params["chat_id"])
        if chat_id in self.unreachable:
            raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        reply_to = params.get("reply_to_message_id")
        if isinstance(params.get("reply_parameters"), dict):
            reply_to = params["reply_parameters"].get("message_id")
        markup = params.get("reply_markup") if isinstance(params.get("reply_markup"), dict) else None
        with self._cond:
            message_id = next(self._message_ids)
            chat = {"id": chat_id, "type": "private" if chat_id > 0 else "group", **({"title": "group"} if chat_id < 0 else {})}
            msg: JSONDict = {"message_id": message_id, "date": int(time.time()), "chat": chat, "from": self.bot}
            if text_key == "text":
                msg["text"] = params.get("text", "")
            elif params.get("caption"):
                msg["caption"] = params["caption"]
            if photo is not None:
                msg["photo"] = [{"file_id": f"sent{message_id}", "file_unique_id": f"usent{message_id}", "width": 1, "height": 1}]
            if markup:
                msg["reply_markup"] = markup
            if reply_to is not None and (chat_id, int(reply_to)) in self.messages:
                msg["reply_to_message"] = self.messages[(chat_id, int(reply_to))]
            self.messages[(chat_id, message_id)] = msg
            sent = Sent(method, chat_id, message_id, params.get(text_key), int(reply_to) if reply_to else None, markup, photo)
            self.sent.append(sent)
            self._cond.notify_all()
        if self.on_event is not None:
            self.on_event(method, sent)
        return msg

    def _api_sendMessage(self, params: JSONDict) -> JSONDict:
        return self._bot_message("sendMessage", params, text_key="text")

    def _api_sendPhoto(self, params: JSONDict) -> JSONDict:
        photo = params.get("photo")
        return self._bot_message("sendPhoto", params, text_key="caption", photo=photo if isinstance(photo, bytes) else b"")

    def _edit(self, method: str, params: JSONDict) -> JSONDict:
        chat_id, message_id = int(params["chat_id"]), int(params["message_id"])
        with self._cond:
            msg = self.messages.get((chat_id, message_id))
            if msg is None:
                raise _ApiError(400, "Bad Request: message to edit not found")
            new = dict(msg)
            if "text" in params:
                new["text"] = params["text"]
            if "caption" in params:
                new["caption"] = params["caption"]
            if isinstance(params.get("reply_markup"), dict):
                new["reply_markup"] = params["reply_markup"]
            else:  # Telegram drops the keyboard when an edit does not resend it
                new.pop("reply_markup", None)
            if new == msg:
                raise _ApiError(400, "Bad Request: message is not modified")
            self.messages[(chat_id, message_id)] = new
            reply_to = (new.get("reply_to_message") or {}).get("message_id")
            sent = Sent(method, chat_id, message_id, new.get("text", new.get("caption")), reply_to, new.get("reply_markup"))
            self.edits.append(sent)
            for i, old in enumerate(self.sent):  # the transcript shows the latest state
                if old.chat_id == chat_id and old.message_id == message_id:
                    self.sent[i] = Sent(old.method, chat_id, message_id, sent.text, old.reply_to, sent.reply_markup, old.photo, old.at)
            self._cond.notify_all()
        if self.on_event is not None:
            self.on_event(method, sent)
        return new

    def _api_editMessageText(self, params: JSONDict) -> JSONDict:
        return self._edit("editMessageText", params)

    def _api_editMessageCaption(self, params: JSONDict) -> JSONDict:
        return self._edit("editMessageCaption", params)

    def _api_editMessageReplyMarkup(self, params: JSONDict) -> JSONDict:
        return self._edit("editMessageReplyMarkup", params)

    def _api_answerCallbackQuery(self, params: JSONDict) -> bool:
        with self._cond:
            self.callback_answers.append(params)
            self._cond.notify_all()
        if self.on_event is not None:
            self.on_event("answerCallbackQuery", params)
        return True

    def _api_getFile(self, params: JSONDict) -> JSONDict:
        stored = self.files.get(str(params.get("file_id")))
        if stored is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if len(stored.data) > self.file_limit:
            raise _ApiError(400, "Bad Request: file is too big")
        file_id = str(params["file_id"])
        result: JSONDict = {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_path": stored.path}
        if stored.declared_size is not None:
            result["file_size"] = stored.declared_size
        return result

    def file_bytes(self, path: str) -> bytes | None:
        for stored in self.files.values():
            if stored.path == path:
                return stored.data
        return None


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def _decode(name: str, value: str) -> Any:
    if name in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class _Handler(BaseHTTPRequestHandler):
    """Routes ``/bot<token>/<method>`` and ``/file/bot<token>/<path>`` to :class:`FakeBotApi`."""

    fake: FakeBotApi
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as Telegram's servers answer: with Nagle on, the body written after the headers
    # waits for the client's delayed ACK, 40 ms on every call (measured: 44 ms from update to handler).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the per-request access log."""

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the bot gave up on a long poll while stopping
            self.close_connection = True

    def _params(self) -> JSONDict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + raw
            )
            params: JSONDict = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if part.get_filename() is not None:
                    params[str(name)] = payload
                else:
                    params[str(name)] = _decode(str(name), payload.decode())
            # attach://name references point at a file part
            for key, value in list(params.items()):
                if isinstance(value, str) and value.startswith("attach://"):
                    params[key] = params.get(value.removeprefix("attach://"), value)
            return params
        if ctype.startswith("application/json"):
            return json.loads(raw or b"{}")
        return {k: _decode(k, v[-1]) for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}

    def _route(self) -> tuple[str, str] | None:
        path = urlparse(self.path).path
        token = self.fake.token
        if path.startswith(f"/bot{token}/"):
            return "api", path.removeprefix(f"/bot{token}/")
        if path.startswith(f"/file/bot{token}/"):
            return "file", path.removeprefix(f"/file/bot{token}/")
        return None

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        route = self._route()
        if route is None or route[0] != "api":
            self._reply(HTTPStatus.UNAUTHORIZED, b'{"ok":false,"error_code":401,"description":"Unauthorized"}')
            return
        status, body = self.fake.call(route[1], self._params())
        self._reply(status, json.dumps(body).encode())

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        route = self._route()
        if route is None:
            self._reply(HTTPStatus.UNAUTHORIZED, b"")
            return
        if route[0] == "file":
            data = self.fake.file_bytes(route[1])
            if data is None:
                self._reply(HTTPStatus.NOT_FOUND, b"")
            else:
                self._reply(HTTPStatus.OK, data, "application/octet-stream")
            return
        status, body = self.fake.call(route[1], dict(parse_qs(urlparse(self.path).query)))
        self._reply(status, json.dumps(body).encode())
