"""`kill -9` of `podium up` at any moment loses nothing it acknowledged.

Writers create, update and delete ConfigMaps as fast as the server answers while the
server is killed at a random moment, several times over. After each restart on the same
data dir, every write the server acknowledged must be there as acknowledged (creates and
updates with their value and resourceVersion, deletes gone), and writes go on.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request

from podium_cluster import Cluster

ROUNDS = 4
WRITERS = 4
SEED = 7


class Writer(threading.Thread):
    """Writes its own ConfigMaps; remembers what the server acknowledged for each."""

    def __init__(self, cluster: Cluster, index: int, round_number: int):
        super().__init__(daemon=True)
        self.server = cluster.server
        self.opener = cluster.opener
        self.prefix = f"w{index}-r{round_number}"
        self.rng = random.Random(SEED * 100 + index * 10 + round_number)
        # name -> (value, resourceVersion) acknowledged last, or None once deleted.
        self.acknowledged: dict[str, tuple[str, str] | None] = {}
        # The name whose request the server died under: its outcome is unknown.
        self.uncertain: set[str] = set()
        self.stop_at = time.monotonic() + 30  # bounded even if nobody stops it

    def request(self, method: str, path: str, body: dict | None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, {}

    def run(self) -> None:
        base = "/api/v1/namespaces/default/configmaps"
        serial = 0
        while time.monotonic() < self.stop_at:
            live = [name for name, state in self.acknowledged.items() if state is not None]
            roll = self.rng.random()
            name = ""
            try:
                if not live or roll < 0.5:
                    serial += 1
                    name, value = f"{self.prefix}-{serial}", f"v{serial}"
                    body = {"metadata": {"name": name}, "data": {"value": value}}
                    status, answer = self.request("POST", base, body)
                    if status == 201:
                        self.acknowledged[name] = (value, answer["metadata"]["resourceVersion"])
                elif roll < 0.85:
                    name = self.rng.choice(live)
                    value = f"u{self.rng.randrange(10**6)}"
                    body = {"data": {"value": value}}
                    request = urllib.request.Request(
                        f"{self.server}{base}/{name}", data=json.dumps(body).encode(), method="PATCH"
                    )
                    request.add_header("Content-Type", "application/merge-patch+json")
                    with self.opener.open(request, timeout=5) as response:
                        answer = json.loads(response.read())
                    self.acknowledged[name] = (value, answer["metadata"]["resourceVersion"])
                else:
                    name = self.rng.choice(live)
                    status, _ = self.request("DELETE", f"{base}/{name}", None)
                    if status == 200:
                        self.acknowledged[name] = None
            except (OSError, ValueError, urllib.error.HTTPError):
                # The server died under this request: its outcome is unknown, so it is
                # neither counted as acknowledged nor as lost. Stop writing.
                self.uncertain.add(name)
                return


def stored_config_maps(cluster: Cluster) -> dict[str, dict]:
    with cluster.opener.open(f"{cluster.server}/api/v1/namespaces/default/configmaps", timeout=10) as response:
        items = json.loads(response.read())["items"]
    return {item["metadata"]["name"]: item for item in items}


def test_nothing_acknowledged_is_lost_to_kill_9(cluster: Cluster):
    rng = random.Random(SEED)
    history: dict[str, tuple[str, str] | None] = {}
    uncertain: set[str] = set()
    total_acknowledged = 0
    for round_number in range(ROUNDS):
        writers = [Writer(cluster, index, round_number) for index in range(WRITERS)]
        for writer in writers:
            writer.start()
        time.sleep(rng.uniform(0.3, 1.5))
        cluster.kill9()
        for writer in writers:
            writer.join(timeout=15)
            assert not writer.is_alive(), "a writer did not stop after the server died"
            history.update(writer.acknowledged)
            uncertain |= writer.uncertain
            total_acknowledged += len(writer.acknowledged)

        cluster.restart()
        stored = stored_config_maps(cluster)
        lost = []
        for name, state in history.items():
            if name in uncertain:
                continue  # a write to it was in flight when the server died
            if state is None:
                if name in stored:
                    lost.append(f"{name}: deleted (acknowledged) but back")
                continue
            value, resource_version = state
            item = stored.get(name)
            if item is None:
                lost.append(f"{name}: acknowledged at {resource_version} but gone")
            elif item.get("data", {}).get("value") != value:
                lost.append(f"{name}: value {item.get('data')} but {value!r} was acknowledged")
        assert not lost, f"round {round_number}: {len(lost)} acknowledged writes lost:\n" + "\n".join(lost[:20])

    # The run means something only if the writers got real work acknowledged.
    assert total_acknowledged >= ROUNDS * 20, f"only {total_acknowledged} writes were acknowledged"
    print(f"{total_acknowledged} acknowledged writes over {ROUNDS} kill -9 rounds, none lost")
