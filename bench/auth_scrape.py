"""Cost of access control on a scrape: none, basic auth (cold and warm cache), and under a flood.

Starts the exporter on the demo catalog twice, once plain and once with a web config holding one
bcrypt user (cost 10, as `htpasswd -nBC 10` makes it), and times sequential keep-alive scrapes
of /metrics. Cold: the first request of a user, which pays bcrypt. Warm: every later one. Flood:
valid scrapes while threads send wrong passwords (known and unknown users), whose answer times
are reported per kind so a difference between the two would show.

    .venv/bin/python -m bench.auth_scrape [--scrapes 2000] [--flood 1000] [--cost 10]
"""

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import bcrypt
import httpx

from exporter.demo import write_demo_catalog
from tests.server import start, stop, write_config

PASSWORD = "bench-password"


def percentiles(samples: list[float]) -> dict[str, float]:
    """Return p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    return {"p50_ms": round(ordered[len(ordered) // 2] * 1000, 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2)}


def scrapes(url: str, count: int, auth: tuple[str, str] | None) -> list[float]:
    """Time `count` sequential scrapes on one keep-alive connection."""
    times = []
    with httpx.Client(auth=auth) as client:
        for _ in range(count):
            began = time.perf_counter()
            client.get(url).raise_for_status()
            times.append(time.perf_counter() - began)
    return times


def flood(url: str, attempts: int, scrape_auth: tuple[str, str]) -> dict[str, object]:
    """Valid scrapes while 4 threads send wrong passwords; time both."""
    wrong: dict[str, list[float]] = {"known_user": [], "unknown_user": []}
    # Answers to a wrong password other than 401, counted: an assert in a thread would only
    # stop that thread, silently.
    unexpected: list[int] = []
    valid: list[float] = []
    done = threading.Event()

    def attack(worker: int) -> None:
        with httpx.Client() as client:
            for i in range(attempts // 4):
                kind = "known_user" if i % 2 else "unknown_user"
                user = "prometheus" if i % 2 else f"ghost{worker}-{i}"
                began = time.perf_counter()
                code = client.get(url, auth=(user, f"x{worker}-{i}")).status_code
                wrong[kind].append(time.perf_counter() - began)
                if code != 401:
                    unexpected.append(code)

    def scrape() -> None:
        with httpx.Client(auth=scrape_auth) as client:
            while not done.is_set():
                began = time.perf_counter()
                client.get(url).raise_for_status()
                valid.append(time.perf_counter() - began)

    scraper = threading.Thread(target=scrape)
    attackers = [threading.Thread(target=attack, args=(w,)) for w in range(4)]
    began = time.perf_counter()
    scraper.start()
    for thread in attackers:
        thread.start()
    for thread in attackers:
        thread.join()
    done.set()
    scraper.join()
    return {"seconds": round(time.perf_counter() - began, 1), "valid_scrapes": len(valid),
            "valid": percentiles(valid), "not_401": len(unexpected),
            **{f"wrong_{k}_mean_ms": round(statistics.mean(v) * 1000, 1)
               for k, v in wrong.items() if v}}


def main() -> None:
    """Run every case and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=2000)
    parser.add_argument("--flood", type=int, default=1000)
    parser.add_argument("--cost", type=int, default=10)
    args = parser.parse_args()
    result: dict[str, object] = {"scrapes": args.scrapes, "bcrypt_cost": args.cost}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        db = root / "demo.db"
        write_demo_catalog(db)
        (root / "plain").mkdir()
        (root / "auth").mkdir()
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(args.cost)).decode()
        web = root / "web.yml"
        web.write_text(f'basic_auth_users:\n  prometheus: "{hashed}"\n')
        # poll 1h, scrape_min_interval 0s: every scrape polls the (unchanged) catalog first.
        plain_cfg, plain_port = write_config(root / "plain", db)
        auth_cfg, auth_port = write_config(
            root / "auth", db, extra=f'web_config_file: "{web}"\nweb_public: [healthz, readyz]\n')
        auth = ("prometheus", PASSWORD)
        plain = start(["--config", str(plain_cfg)], plain_port)
        try:
            url = f"http://127.0.0.1:{plain_port}/metrics"
            result["no_auth"] = percentiles(scrapes(url, args.scrapes, None))
        finally:
            stop(plain)
        # A public /readyz lets start() wait without credentials: the cache stays cold.
        proc = start(["--config", str(auth_cfg)], auth_port)
        try:
            url = f"http://127.0.0.1:{auth_port}/metrics"
            cold = scrapes(url, 1, auth)  # the first request of this user pays bcrypt
            result["basic_auth_cold_ms"] = round(cold[0] * 1000, 2)
            result["basic_auth_warm"] = percentiles(scrapes(url, args.scrapes, auth))
            result["flood"] = flood(url, args.flood, auth)
        finally:
            stop(proc)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
