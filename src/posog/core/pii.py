"""Personal data at rest: AES-256-GCM with a key id kept beside each ciphertext for rotation, and a
keyed hash of СНИЛС for look-ups without decryption (SPEC §10)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class PiiError(Exception):
    """A ciphertext could not be opened: unknown key id or tampered data."""


class PiiCipher:
    """Seals and opens personal data. ``keys`` maps key id → 32-byte key; new data uses ``active``."""

    def __init__(self, keys: Mapping[str, bytes], active: str, hash_key: bytes) -> None:
        if active not in keys:
            raise ValueError(f"active key {active!r} not among the keys")
        self._aead = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.active_key_id = active
        self._hash_key = hash_key

    @classmethod
    def from_settings(cls, keys: Mapping[str, str], active: str, hash_key: str) -> PiiCipher:
        return cls({k: base64.b64decode(v) for k, v in keys.items()}, active, hash_key.encode())

    def seal(self, plaintext: bytes, *, context: str) -> tuple[str, bytes]:
        """Encrypt ``plaintext`` bound to ``context`` (e.g. the card id): (key id, nonce + ciphertext)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.active_key_id].encrypt(nonce, plaintext, context.encode())
        return self.active_key_id, nonce + sealed

    def open(self, key_id: str, blob: bytes, *, context: str) -> bytes:
        aead = self._aead.get(key_id)
        if aead is None:
            raise PiiError(f"no key {key_id!r} to open personal data (rotated out?)")
        try:
            return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
        except InvalidTag as exc:
            raise PiiError("personal data failed authentication (wrong key or tampered)") from exc

    def seal_json(self, value: Any, *, context: str) -> tuple[str, bytes]:
        return self.seal(json.dumps(value, ensure_ascii=False, sort_keys=True).encode(), context=context)

    def open_json(self, key_id: str, blob: bytes, *, context: str) -> Any:
        return json.loads(self.open(key_id, blob, context=context))

    def snils_hash(self, snils_digits: str) -> str:
        """HMAC-SHA256 of the 11 СНИЛС digits: stable across key rotation, useless without the key."""
        return hmac.new(self._hash_key, snils_digits.encode(), hashlib.sha256).hexdigest()
