"""Discord API objects as JSON, shaped like the API reference (https://discord.com/developers/docs):
only the fields discord.py 2.x reads, with ids as strings as Discord sends them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]
EPHEMERAL = 1 << 6  # message flag
# Above 2**53 on purpose: a snowflake that a float or a 32-bit column would mangle fails the tests.
_ids = itertools.count(1_300_000_000_000_000_000)


def snowflake() -> str:
    return str(next(_ids))


def now() -> str:
    return datetime.now(UTC).isoformat()


def user(uid: str, name: str, *, bot: bool = False) -> JSON:
    return {"id": uid, "username": name, "global_name": name, "discriminator": "0", "avatar": None, "bot": bot}


def member(user_json: JSON, roles: list[str]) -> JSON:
    return {"user": user_json, "roles": roles, "joined_at": now(), "deaf": False, "mute": False, "nick": None, "flags": 0}


def role(rid: str, name: str, position: int) -> JSON:
    return {
        "id": rid, "name": name, "permissions": "0", "position": position, "color": 0, "hoist": False,
        "managed": False, "mentionable": False, "flags": 0,
    }


def text_channel(cid: str, guild_id: str, name: str) -> JSON:
    return {"id": cid, "type": 0, "guild_id": guild_id, "name": name, "position": 0, "permission_overwrites": []}


def dm_channel(cid: str, recipient: JSON) -> JSON:
    return {"id": cid, "type": 1, "recipients": [recipient], "last_message_id": None}


def guild(gid: str, name: str, *, owner_id: str, roles: list[JSON], channels: list[JSON], members: list[JSON]) -> JSON:
    return {
        "id": gid, "name": name, "icon": None, "owner_id": owner_id, "roles": roles, "channels": channels,
        "members": members, "member_count": len(members), "unavailable": False, "features": [], "emojis": [],
        "stickers": [], "threads": [], "voice_states": [], "presences": [], "stage_instances": [],
        "guild_scheduled_events": [], "large": False, "verification_level": 0, "mfa_level": 0,
        "premium_tier": 0, "preferred_locale": "en-US", "nsfw_level": 0, "system_channel_flags": 0,
        "default_message_notifications": 0, "explicit_content_filter": 0,
    }


def attachment(aid: str, filename: str, size: int, url: str, content_type: str | None) -> JSON:
    data: JSON = {"id": aid, "filename": filename, "size": size, "url": url, "proxy_url": url}
    if content_type:
        data["content_type"] = content_type
    return data


def message(
    mid: str, channel_id: str, author: JSON, *, content: str = "", guild_id: str | None = None,
    member_json: JSON | None = None, attachments: list[JSON] | None = None, mentions: list[JSON] | None = None,
    components: list[JSON] | None = None, flags: int = 0, reference: str | None = None,
    interaction_metadata: JSON | None = None,
) -> JSON:
    data: JSON = {
        "id": mid, "channel_id": channel_id, "author": author, "content": content, "timestamp": now(),
        "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": mentions or [],
        "mention_roles": [], "attachments": attachments or [], "embeds": [], "pinned": False, "type": 0,
        "components": components or [], "flags": flags,
    }
    if guild_id is not None:
        data["guild_id"] = guild_id
        if member_json is not None:  # a MESSAGE_CREATE carries the member without its user
            data["member"] = {k: v for k, v in member_json.items() if k != "user"}
    if reference is not None:
        data["type"] = 19  # a reply
        data["message_reference"] = {"message_id": reference, "channel_id": channel_id}
    if interaction_metadata is not None:
        data["interaction_metadata"] = interaction_metadata
    return data


def interaction(
    iid: str, token: str, application_id: str, kind: int, data: JSON, *, who: JSON, channel: JSON,
    guild_id: str | None, member_json: JSON | None, attachment_size_limit: int, message_json: JSON | None = None,
) -> JSON:
    """INTERACTION_CREATE: ``kind`` 2 = application command, 3 = component; from a guild member or a DM user."""
    payload: JSON = {
        "id": iid, "application_id": application_id, "type": kind, "data": data, "token": token, "version": 1,
        "channel_id": channel["id"], "channel": channel, "locale": "en-US", "guild_locale": "en-US",
        "app_permissions": "0", "entitlements": [], "authorizing_integration_owners": {"0": "0"},
        "context": 0 if guild_id else 1, "attachment_size_limit": attachment_size_limit,
    }
    if guild_id is not None:
        payload["guild_id"] = guild_id
        payload["member"] = member_json
    else:
        payload["user"] = who
    if message_json is not None:
        payload["message"] = message_json
    return payload
