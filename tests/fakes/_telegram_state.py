"""Chat state of FakeTelegram: message store, update queue and update builders."""

from __future__ import annotations

import copy
import secrets
import time
from collections import defaultdict
from typing import Any

from ._server import FakeServer

Json = dict[str, Any]
BOT_USER: Json = {
    "id": 42,
    "is_bot": True,
    "first_name": "TopUpBot",
    "username": "topup_test_bot",
}


class TelegramState(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.messages: dict[tuple[int, int], Json] = {}  # bot messages, latest state
        self.updates: list[Json] = []  # pending (not yet confirmed by offset)
        self._last_message_id: dict[int, int] = defaultdict(int)
        self._next_update_id = 1

    @staticmethod
    def user(
        user_id: int,
        first_name: str = "Ivan",
        username: str | None = "ivan",
        last_name: str | None = None,
        language_code: str | None = "ru",
    ) -> Json:
        """A plain User dict (does not enqueue anything)."""
        extra = {
            "last_name": last_name,
            "username": username,
            "language_code": language_code,
        }
        user: Json = {"id": user_id, "is_bot": False, "first_name": first_name}
        user.update({k: v for k, v in extra.items() if v is not None})
        return user

    def send_text(self, user: Json, text: str) -> Json:
        """Enqueue a private text message from `user`; returns the Update."""
        msg = self._user_message(user)
        msg["text"] = text
        if text.startswith("/"):
            command = text.split()[0]
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._enqueue("message", msg)

    def send_sticker(self, user: Json) -> Json:
        """Enqueue a private sticker message (no text) from `user`."""
        msg = self._user_message(user)
        msg["sticker"] = {
            "file_id": f"CAACAgIAAxk{secrets.token_hex(8)}",
            "file_unique_id": secrets.token_hex(6),
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
        return self._enqueue("message", msg)

    def press(self, user: Json, message: Json, data: str) -> Json:
        """Enqueue a callback query on a bot `message` (its latest edited state if known)."""
        key = (message["chat"]["id"], message["message_id"])
        query = {
            "id": f"{secrets.randbelow(10**9)}{self._next_update_id:06d}",
            "from": user,
            "chat_instance": "1",
            "data": data,
            "message": copy.deepcopy(self.messages.get(key, message)),
        }
        return self._enqueue("callback_query", query)

    def _bot_message(self, chat_id: int) -> Json:
        msg = self._new_message(chat_id, BOT_USER, {"id": chat_id, "type": "private"})
        self.messages[(chat_id, msg["message_id"])] = msg
        return msg

    def _user_message(self, user: Json) -> Json:
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        if "username" in user:
            chat["username"] = user["username"]
        return self._new_message(user["id"], user, chat)

    def _new_message(self, chat_id: int, sender: Json, chat: Json) -> Json:
        self._last_message_id[chat_id] += 1
        return {
            "message_id": self._last_message_id[chat_id],
            "date": int(time.time()),
            "chat": chat,
            "from": dict(sender),
        }

    def _enqueue(self, kind: str, payload: Json) -> Json:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self.updates.append(update)
        self._notify()
        return copy.deepcopy(update)
