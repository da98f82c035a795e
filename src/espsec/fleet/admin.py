"""The fleet's admin API from Python (what ``espsec fleet release|cohort|devices|rollout``
call). It is served on the admin listener (``--admin-port``, 127.0.0.1 by default)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

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

    def _pages(self, path: str, params: dict[str, str], cursor: str, limit: int) -> list[Any]:
        """Items of a paginated list, following ``next`` until ``limit`` items."""
        items: list[Any] = []
        after: str | None = None
        while len(items) < limit:
            query = dict(params, limit=str(min(1000, limit - len(items))))
            if after is not None:
                query[cursor] = after
            page = self._client.json_request("GET", f"{path}?{urlencode(query)}")
            items.extend(page["items"])
            after = page.get("next")
            if after is None:
                break
            after = str(after)
        return items

    def releases(self, *, limit: int = 100_000) -> list[dict[str, Any]]:
        return self._pages(f"{ADMIN_PATH}releases", {}, "after", limit)

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

    def devices(
        self,
        *,
        cohort: str | None = None,
        weak: bool | None = None,
        chip: str | None = None,
        flag: str | None = None,
        limit: int = 10_000_000,
    ) -> list[dict[str, Any]]:
        """Devices by id (every page, up to ``limit``), optionally filtered."""
        params = {
            k: v
            for k, v in (
                ("cohort", cohort),
                ("weak", None if weak is None else ("1" if weak else "0")),
                ("chip", chip),
                ("flag", flag),
            )
            if v is not None
        }
        return self._pages(f"{ADMIN_PATH}devices", params, "after", limit)

    def device(self, device_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._client.json_request(
            "GET", f"{ADMIN_PATH}devices/{quote(device_id, safe='')}"
        )
        return result

    def reports(self, device_id: str | None = None, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Reports, newest first (up to ``limit``)."""
        params = {} if device_id is None else {"device": device_id}
        return self._pages(f"{ADMIN_PATH}reports", params, "before", limit)

    def posture(self) -> dict[str, Any]:
        result: dict[str, Any] = self._client.json_request("GET", f"{ADMIN_PATH}posture")
        return result

    def start_rollout(self, release_id: str, cohort: str, **options: Any) -> dict[str, Any]:
        """Start a staged rollout (options: steps, halt_on_failure_rate, window_s,
        step_interval_s, min_reports)."""
        body = {"release_id": release_id, "cohort": cohort, **options}
        if "halt_on_failure_rate" in body:  # a decimal string: the API takes no floats
            body["halt_on_failure_rate"] = repr(float(body["halt_on_failure_rate"]))
        result: dict[str, Any] = self._client.json_request(
            "POST", f"{ADMIN_PATH}rollouts", body, ok=(201,)
        )
        return result

    def rollouts(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._client.json_request("GET", f"{ADMIN_PATH}rollouts")
        return result

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._client.json_request(
            "GET", f"{ADMIN_PATH}rollouts/{int(rollout_id)}"
        )
        return result

    def rollout_action(self, rollout_id: int, action: str) -> dict[str, Any]:
        """``pause``, ``resume`` or ``abort``."""
        result: dict[str, Any] = self._client.json_request(
            "POST", f"{ADMIN_PATH}rollouts/{int(rollout_id)}/{quote(action, safe='')}", {}
        )
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._client.json_request("GET", f"{ADMIN_PATH}stats")
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._client.json_request("GET", f"{ADMIN_PATH}health")
        return result


__all__ = ["AdminClient", "HttpError"]
