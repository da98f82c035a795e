"""The fleet's admin API from Python (what ``espsec fleet release|cohort|devices`` call)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from espsec.ota.client import FleetClient, HttpError, TlsTrust, decode_json
from espsec.ota.protocol import ADMIN_PATH


class AdminClient:
    """Token-authenticated admin calls over HTTPS."""

    def __init__(
        self, base_url: str, token: str, trust: TlsTrust, *, timeout: float = 60.0
    ) -> None:
        self._client = FleetClient(base_url, trust, timeout=timeout, token=token)

    def __repr__(self) -> str:
        return f"<AdminClient {self._client!r}>"

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def upload_release(self, bundle: bytes) -> dict[str, Any]:
        """Upload a release bundle; the server verifies it before storing it."""
        status, _, data = self._client.request(
            "POST",
            f"{ADMIN_PATH}releases",
            body=bundle,
            headers={"Content-Type": "application/zip"},
        )
        result: dict[str, Any] = decode_json(status, data, "upload", (201,))
        return result

    def releases(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._client.json_request("GET", f"{ADMIN_PATH}releases")
        return result

    def assign_cohort(self, cohort: str, release_id: str | None) -> dict[str, Any]:
        result: dict[str, Any] = self._client.json_request(
            "PUT", f"{ADMIN_PATH}cohorts/{quote(cohort, safe='')}", {"release_id": release_id}
        )
        return result

    def cohorts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._client.json_request("GET", f"{ADMIN_PATH}cohorts")
        return result

    def assign_device(self, device_id: str, cohort: str) -> dict[str, Any]:
        result: dict[str, Any] = self._client.json_request(
            "PUT", f"{ADMIN_PATH}devices/{quote(device_id, safe='')}", {"cohort": cohort}
        )
        return result

    def devices(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._client.json_request("GET", f"{ADMIN_PATH}devices")
        return result

    def reports(self, device_id: str | None = None) -> list[dict[str, Any]]:
        path = f"{ADMIN_PATH}reports"
        if device_id is not None:
            path += f"?device={quote(device_id, safe='')}"
        result: list[dict[str, Any]] = self._client.json_request("GET", path)
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._client.json_request("GET", f"{ADMIN_PATH}stats")
        return result


__all__ = ["AdminClient", "HttpError"]
