"""`make bench`: one run on this machine, all on loopback, against the real broker and registry.

1. Snapshot: the simulator with no quota and 200,000 tickets (plus its standard other modules); the bridge
   in exactly-once mode runs `--snapshot-mode initial_only`. Records/s, API calls against the minimum,
   CPU seconds per record of the bridge process alone, peak RSS.
2. Webhook ingest: examples/webhook_load posts Desk-format deliveries (batches of 1 and of 10) to the
   service URL: events/s at saturation, p50/p99 from POST to 200 (the Kafka commit) at 2,000 events/s,
   peak RSS.
3. Kafka ceiling: Apache Kafka's ProducerPerformance on the same broker with the snapshot's mean record
   size, acks=all, idempotent and transactional.
4. Peer: Apache Camel 4.22.0 (scripts/bench/peer.sh) as HTTP server -> Kafka on the same broker, fed by
   the same load generator at the same settings; see PEERS_NOTE. Parts 2 and 4 run side by side, their
   saturation runs taking turns (see webhook_runs).
5. Snapshot instructions: the snapshot at 20,000 and 40,000 tickets under valgrind's callgrind; instructions
   per ticket between them, and the functions that take most. Unlike CPU time, this moves little with the
   machine's hour (up to 3 %, all in librdkafka's clock-driven work), so it compares code across runs; it
   counts the code's work, not the time spent waiting on memory and the kernel. Runs right after part 1;
   skipped when valgrind is not installed.

BENCH_ONLY=instructions runs only part 5 (target/bench/report-instructions.json; BENCH_INSTRUCTIONS=0 skips
it in a full run), BENCH_ONLY=peer only part 4 (report: target/bench/report-peer.json), BENCH_ONLY=webhook
parts 2 and 4 (target/bench/report-webhook.json), BENCH_ONLY=snapshot part 1 (target/bench/report-snapshot.json;
BENCH_TICKETS sets the ticket count, default 200,000); BENCH_NO_PEER=1 leaves the peer out of
BENCH_ONLY=webhook; BENCH_KAFKA_PROPERTIES="k=v,..." sets the bridge's kafka.properties; BENCH_DURATION_S shortens every
load run (default 15 s); BENCH_ROUNDS sets the saturation rounds of each (default 2).

Writes target/bench/report.json (CONTRACT §9) and prints a Markdown table.
"""
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REL = os.path.join(ROOT, "target", "release")
OUT = os.path.join(ROOT, "target", "bench")
BOOTSTRAP = "127.0.0.1:9092"
REGISTRY = "http://127.0.0.1:8081/apis/ccompat/v7"
ORG = "60000000001"
TICKETS = int(os.environ.get("BENCH_TICKETS", "200000"))
# Largest page per list-able module (src/zoho/catalog.rs); teams is one unpaged call.
MAX_PAGE = {"tickets": 100, "contacts": 100, "accounts": 100, "departments": 200, "products": 100,
            "agents": 200, "teams": 10**9, "tasks": 100, "calls": 100, "events": 100, "contracts": 100,
            "articles": 50}
DURATION = float(os.environ.get("BENCH_DURATION_S", "15"))
# Saturation rounds per system, taken in turns with the other (BENCH_ROUNDS), and the warm-up before them.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
WARMUP_S = min(5.0, DURATION)
# BENCH_KAFKA_PROPERTIES="linger.ms=1,batch.size=65536" tries producer settings (kafka.properties).
KAFKA_PROPERTIES = ", ".join(f'"{k}" = "{v}"' for k, v in (kv.split("=", 1) for kv in
                             os.environ.get("BENCH_KAFKA_PROPERTIES", "").split(",") if "=" in kv))
PEER_PORT = 18183
PEER_NAME = "Apache Camel 4.22.0 (camel-main, platform-http-vertx -> camel-kafka)"
PEERS_NOTE = ("The issue's peer, Redpanda Connect, cannot be installed here (the Go module proxy refuses it and "
              "its licence is not open source), and io.strimzi:kafka-bridge is not served by this machine's "
              "Maven. What runs instead is the pipeline a user would build with Apache Camel 4.22.0 "
              "(Apache-2.0) on camel-main, no Spring: scripts/bench/peer/routes.yaml, an HTTP server route "
              "(camel-platform-http-vertx; one small class starts its Vert.x server, as "
              "camel-platform-http-main 4.22.0 is not served) that splits each delivery and sends every event "
              "as one Kafka record keyed by payload.id with camel-kafka (kafka-clients 4.3.1, acks=all, "
              "idempotent, linger 1 ms, lz4: the bridge's producer defaults), answering 200 only once Kafka "
              "has acknowledged every record. "
              "The peer is not transactional and does no Avro/registry work, which the bridge does, so it "
              "does less per event. Same broker, same load generator, same settings; JVM -Xmx512m.")


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def http_json(url, data=None):
    req = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def wait_http(url, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


def spawn(cmd, log_name, ready, env=None):
    """Starts `cmd`, its output in target/bench/<log_name>, and waits for `ready(proc)`; stops the process
    if it never gets there."""
    with open(os.path.join(OUT, log_name), "w") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env)
    try:
        ready(proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def start_sim(port, *flags):
    return spawn([os.path.join(REL, "zoho-desk-sim"), "--addr", f"127.0.0.1:{port}", *flags], f"sim-{port}.log",
                 lambda _: wait_http(f"http://127.0.0.1:{port}/_sim/stats"))


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def bridge_config(name, sim_port, prefix, extra_source="", webhook_port=18180, admin_port=18190,
                  extra_kafka=""):
    path = os.path.join(OUT, f"{name}.toml")
    with open(path, "w") as f:
        f.write(f"""
[kafka]
bootstrap_servers = "{BOOTSTRAP}"
topic_prefix = "{prefix}"
{extra_kafka}
properties = {{ {KAFKA_PROPERTIES} }}
[schema_registry]
url = "{REGISTRY}"
[http]
webhook_listen = "127.0.0.1:{webhook_port}"
admin_listen = "127.0.0.1:{admin_port}"
public_url = "http://127.0.0.1:{webhook_port}"
[[sources]]
name = "main"
org_id = "{ORG}"
client_id = "1000.SIMCLIENT000000000000000000000"
client_secret = "simsecret0000000000000000000000000000000000"
credentials_file = "{OUT}/{name}.credentials.json"
accounts_url = "http://127.0.0.1:{sim_port}"
desk_url = "http://127.0.0.1:{sim_port}"
{extra_source}
[sources.quota]
requests_per_minute = 1000000
max_concurrency = 16
daily_credits = 1000000000
""")
    code = http_json(f"http://127.0.0.1:{sim_port}/_sim/grant-codes", {})["code"]
    subprocess.run([os.path.join(REL, "zoho-desk-cdc"), "auth", "--config", path, "--source", "main",
                    "--code", code], check=True, capture_output=True)
    return path


def wait_port(port, proc, timeout=120):
    """Waits until something accepts on 127.0.0.1:port; fails early if proc exits."""
    import socket
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"127.0.0.1:{port} did not answer in {timeout} s")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_snapshot_sim(tickets):
    return start_sim(18111, "--scale", f"tickets={tickets}", "--daily-credits", "1000000000",
                     "--concurrency", "64")


# A snapshot run that takes longer than this is stuck (200,000 tickets take under a minute, under callgrind
# 40,000 about half one): it is killed and the part fails instead of the bench hanging.
SNAPSHOT_TIMEOUT_S = 1800


def run_snapshot(prefix, name, wrapper=()):
    """Runs the bridge's snapshot (`initial_only`) against the simulator on 18111, under `wrapper` if given."""
    cfg = bridge_config(name, 18111, prefix, webhook_port=18181, admin_port=18191)
    with open(os.path.join(OUT, f"{name}-bridge.log"), "w") as err:
        try:
            rc = subprocess.run([*wrapper, os.path.join(REL, "zoho-desk-cdc"), "run", "--config", cfg,
                                 "--snapshot-mode", "initial_only"], stderr=err, stdout=err,
                                timeout=SNAPSHOT_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{name} run did not end in {SNAPSHOT_TIMEOUT_S} s; "
                               f"see target/bench/{name}-bridge.log") from None
    if rc != 0:
        raise RuntimeError(f"{name} run exited {rc}; see target/bench/{name}-bridge.log")


def snapshot_bench(prefix):
    sim = start_snapshot_sim(TICKETS)
    try:
        before = http_json("http://127.0.0.1:18111/_sim/stats")["requests_total"]
        usage0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        run_snapshot(prefix, "snapshot")
        seconds = time.time() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        calls = http_json("http://127.0.0.1:18111/_sim/stats")["requests_total"] - before
        records, min_calls = 0, 0
        for module, page in MAX_PAGE.items():
            n = TICKETS if module == "tickets" else len(http_json(f"http://127.0.0.1:18111/_sim/state/{module}"))
            records += n
            min_calls += max(1, math.ceil(n / page))
        cpu = (usage.ru_utime - usage0.ru_utime) + (usage.ru_stime - usage0.ru_stime)
        return {"records": records, "seconds": round(seconds, 2), "records_per_s": round(records / seconds, 1),
                "api_calls": calls, "min_api_calls": min_calls, "cpu_seconds": round(cpu, 2),
                "cpu_us_per_record": round(cpu * 1e6 / records, 2),
                "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}
    finally:
        stop(sim)


# Part 5: the snapshot's cost in instructions, which unlike its CPU time moves little with the machine's hour.
INSTR_TICKETS = (20_000, 40_000)
INSTR_TOP = 12


def callgrind_counts(path):
    """Total instructions, and each function's own (exclusive) instructions, of a callgrind output file."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--auto=no", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    total, functions = 0, {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$", line)
        if not m:
            continue
        count, name = int(m.group(1).replace(",", "")), m.group(2)
        if name.startswith("PROGRAM TOTALS"):
            total = count
            continue
        # "file:function [object]" -> "function": one function's lines from several files add up.
        name = re.sub(r" \[[^\]]*\]$", "", name.split(":", 1)[-1] if ":" in name else name)
        functions[name] = functions.get(name, 0) + count
    return total, functions


def instructions_bench(prefix):
    """Instructions per ticket past start-up: two snapshots under callgrind, the larger less the smaller over
    the tickets between them (start-up and the other modules cancel out). Callgrind runs the bridge's threads
    one at a time, so this counts work, not waiting. The bridge's own functions count the same in every run of
    one binary; librdkafka's clock-driven work moved the total by up to 3 % (57,909 and 59,563 per ticket)."""
    if os.environ.get("BENCH_INSTRUCTIONS") == "0":
        return {"skipped": "BENCH_INSTRUCTIONS=0"}
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        return {"skipped": "valgrind is not installed (Debian: apt-get install valgrind)"}
    counts = []
    try:
        for tickets in INSTR_TICKETS:
            sim = start_snapshot_sim(tickets)
            path = os.path.join(OUT, f"callgrind-{tickets}.out")
            try:
                run_snapshot(f"{prefix}{tickets}", f"instructions-{tickets}",
                             wrapper=("valgrind", "--tool=callgrind", f"--callgrind-out-file={path}"))
            finally:
                stop(sim)
            counts.append(callgrind_counts(path))
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        # A measurement aid, not a target: its failure is reported and the rest of the bench goes on.
        return {"error": str(e)}
    (low, low_fns), (high, high_fns) = counts
    between = INSTR_TICKETS[1] - INSTR_TICKETS[0]
    per_fn = {name: (high_fns.get(name, 0) - low_fns.get(name, 0)) / between
              for name in set(low_fns) | set(high_fns)}
    top = sorted(per_fn.items(), key=lambda kv: -kv[1])[:INSTR_TOP]
    return {"tickets": list(INSTR_TICKETS), "instructions": [low, high],
            "per_ticket": round((high - low) / between),
            "top_functions": [{"function": name, "per_ticket": round(n)} for name, n in top]}


def instruction_rows(instr):
    for why in ("skipped", "error"):
        if why in instr:
            return [("snapshot instructions per ticket", f'{why}: {instr[why]}')]
    return [("snapshot instructions per ticket (callgrind)", instr["per_ticket"]),
            *((f'  of which `{f["function"][:80]}`', f["per_ticket"]) for f in instr["top_functions"][:6])]


def loadgen(url, rate, batch, duration, concurrency):
    out = subprocess.run([os.path.join(REL, "examples", "webhook_load"), "--url", url, "--rate", str(rate),
                          "--batch", str(batch), "--duration-s", str(duration), "--concurrency",
                          str(concurrency)], check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    log(f"  load rate={rate} batch={batch}: {json.dumps(result)}")
    return result


class Target:
    """One system under webhook load: its service URL and process, and what was measured of it. An
    optional one (the peer) that fails is recorded and left out; any other failing ends the bench."""

    def __init__(self, name, url, proc, optional=False, topic=None):
        self.name, self.url, self.proc, self.optional, self.topic = name, url, proc, optional, topic
        # By run: the result (of saturation runs, the best round's, with `rounds_events_per_s`).
        self.runs, self.error = {}, None
        # Events acknowledged in every run, rounds and warm-up included.
        self.events = 0


def webhook_runs(targets):
    """The same webhook load for every target, side by side: each is warmed up (WARMUP_S at saturation,
    batch 10: the broker's transactional paths and the peer's JVM compile there), then ROUNDS rounds of
    saturation runs (batch 1 and 10, concurrency 64) taking turns, the order reversed every round, so that
    all meet the machine in the same state (its speed moves by up to 2x within an hour, see the README);
    each keeps its best round. Then 2,000 events/s (batch 1 and 10) for each."""
    rounds = {}

    def run(t, key, *args):
        if t.error:
            return
        try:
            result = loadgen(t.url, *args)
        except Exception as e:  # the peer's failure must not end the bench
            if not t.optional:
                raise
            log(f"{t.name} failed: {e!r} (see target/bench/peer.log)")
            t.error = f"{type(e).__name__}: {e}"
            return
        t.events += result["events"]
        if key.startswith("saturation"):
            rounds.setdefault((t, key), []).append(result)
        else:
            t.runs[key] = result

    for t in targets:
        log(f"  {t.name}: warm-up")
        run(t, "warm_up", 0, 10, WARMUP_S, 64)
    for r in range(ROUNDS):
        order = targets if r % 2 == 0 else targets[::-1]
        for batch in (1, 10):
            for t in order:
                log(f"  {t.name}: round {r + 1} of {ROUNDS}, saturation, batch {batch}")
                run(t, f"saturation_batch_{batch}", 0, batch, DURATION, 64)
    for batch in (1, 10):
        for t in targets:
            log(f"  {t.name}: 2,000 events/s, batch {batch}")
            run(t, f"rate_2000_batch_{batch}", 2000, batch, DURATION, 256)
    for (t, key), results in rounds.items():
        best = dict(max(results, key=lambda r: r["events_per_s"]))
        best["rounds_events_per_s"] = [round(r["events_per_s"], 1) for r in results]
        t.runs[key] = best


def summary(t):
    """The report entry of a target: its best saturation round, p50/p99 of the batch-10 rate run, and every
    event acknowledged, the warm-up's too (the peer's are compared with the records in its topic)."""
    fixed = t.runs["rate_2000_batch_10"]
    best = max(r["events_per_s"] for k, r in t.runs.items() if k.startswith("saturation"))
    return {"events": t.events,
            "events_per_s": round(best, 1), "p50_ms": round(fixed["p50_ms"], 2),
            "p99_ms": round(fixed["p99_ms"], 2), "peak_rss_mib": round(peak_rss_mib(t.proc.pid), 1)}


def topic_records(topic):
    """Records in a topic: the sum of its partitions' high watermarks."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient
    parts = AdminClient({"bootstrap.servers": BOOTSTRAP}).list_topics(topic, timeout=30).topics[topic].partitions
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"bench-{time.time_ns()}"})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts)
    finally:
        c.close()


def start_peer(prefix, entry):
    """Part 4: the Camel peer on 127.0.0.1:PEER_PORT; its Target, or None with the failure in `entry`."""
    try:
        topic = f"{prefix}.peer.tickets"
        create_topic(topic)
        script = os.path.join(ROOT, "scripts", "bench", "peer.sh")
        subprocess.run([script, "fetch"], check=True, capture_output=True, text=True)
        env = dict(os.environ, PEER_HOST="127.0.0.1", PEER_PORT=str(PEER_PORT), PEER_BROKERS=BOOTSTRAP,
                   PEER_TOPIC=topic)
        # peer.sh execs the JVM, so the pid is the JVM's.
        peer = spawn([script, "run"], "peer.log", lambda p: wait_port(PEER_PORT, p), env=env)
        return Target("peer", f"http://127.0.0.1:{PEER_PORT}/webhooks/zoho/main/peer", peer, optional=True,
                      topic=topic)
    except Exception as e:  # the peer's failure must not end the bench
        log(f"peer failed: {e!r} (see target/bench/peer.log)")
        entry["error"] = f"{type(e).__name__}: {e}"
        return None


def peer_entry(entry, target):
    """The peer's report entry from its measured Target (or its start-up failure, already in `entry`)."""
    if target is not None and target.error is None:
        try:
            entry.update(summary(target))
            entry["events_per_s_batch_1"] = round(target.runs["saturation_batch_1"]["events_per_s"], 1)
            entry["events_per_s_batch_10"] = round(target.runs["saturation_batch_10"]["events_per_s"], 1)
            entry["runs"] = target.runs
            entry["records_in_topic"] = topic_records(target.topic)
        except Exception as e:
            target.error = f"{type(e).__name__}: {e}"
    if target is not None and target.error is not None:
        entry["error"] = target.error
    return entry


def start_bridge(name, prefix, sim_port, webhook_port, admin_port, extra_kafka=""):
    """A bridge streaming webhooks (tickets only, no snapshot, JWT verification off) as a Target."""
    cfg = bridge_config(name, sim_port, prefix,
                        'snapshot_mode = "never"\nverify_jwt = false\nmodules = ["tickets"]\n'
                        'reconcile_interval_s = 86400', webhook_port=webhook_port, admin_port=admin_port,
                        extra_kafka=extra_kafka)
    with open(os.path.join(OUT, f"{name}.credentials.json")) as f:
        secret = json.load(f)["webhook_secret"]
    url = f"http://127.0.0.1:{webhook_port}/webhooks/zoho/main/{secret}"
    proc = spawn([os.path.join(REL, "zoho-desk-cdc"), "run", "--config", cfg], f"{name}-bridge.log",
                 lambda _: wait_http(url, 90))
    return Target(name, url, proc)


def webhook_bench(prefix, bridge_on=True, peer_on=True):
    """Parts 2 and 4 under the same load, side by side: the bridge in exactly-once mode (prefix + "w"),
    the bridge in at-least-once mode (prefix + "a", the peer's own guarantee: idempotent, acks=all, no
    transactions) and the peer (prefix + "p"). Returns (exactly-once summary, its runs, at-least-once
    summary with its runs, peer entry); the parts left out are None."""
    entry = {"name": PEER_NAME, "events_per_s": None, "p99_ms": None, "p50_ms": None, "peak_rss_mib": None,
             "records_per_event": 1}
    sim = bridge = alo = peer = None
    targets = []
    try:
        if bridge_on:
            sim = start_sim(18112)
            bridge = start_bridge("webhook", prefix + "w", 18112, 18182, 18192)
            targets.append(bridge)
            alo = start_bridge("webhook-at-least-once", prefix + "a", 18112, 18184, 18194,
                               "exactly_once = false")
            targets.append(alo)
        if peer_on:
            peer = start_peer(prefix + "p", entry)
            if peer is not None:
                targets.append(peer)
        webhook_runs(targets)
        hook = summary(bridge) if bridge else None
        hook_alo = dict(summary(alo), runs=alo.runs) if alo else None
        return hook, bridge.runs if bridge else None, hook_alo, peer_entry(entry, peer) if peer_on else None
    finally:
        for t in targets:
            stop(t.proc)
        if sim is not None:
            stop(sim)


def mean_record_size(topic):
    sys.path.insert(0, "")
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"bench-{time.time_ns()}",
                  "isolation.level": "read_committed", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    sizes, end = [], time.time() + 30
    while len(sizes) < 2000 and time.time() < end:
        m = c.poll(1.0)
        if m is not None and not m.error() and m.value():
            sizes.append(len(m.value()))
    c.close()
    return int(sum(sizes) / len(sizes)) if sizes else 1024


def create_topic(name):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(name, 3, 1)]).values():
        try:
            f.result(30)
        except Exception as e:  # already there from an earlier run
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise


def kafka_ceiling(record_size, prefix):
    results = {}
    for mode in ("idempotent", "transactional"):
        topic = f"{prefix}.ceiling.{mode}"
        create_topic(topic)
        args = [os.path.join(ROOT, "scripts", "services.sh"), "kafka-java",
                "org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", "300000",
                "--record-size", str(record_size), "--throughput", "-1", "--producer-props",
                f"bootstrap.servers={BOOTSTRAP}", "acks=all", "enable.idempotence=true", "linger.ms=5",
                "compression.type=lz4"]
        if mode == "transactional":
            args += ["--transactional-id", f"{prefix}-ceiling", "--transaction-duration-ms", "100"]
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
        last = [l for l in out.splitlines() if "records sent" in l][-1]
        results[mode] = float(last.split(",")[1].split()[0])
    return {"tool": "org.apache.kafka.tools.ProducerPerformance (acks=all, idempotent; transactional)",
            "record_size": record_size, "records_per_s": results["transactional"],
            "records_per_s_idempotent": results["idempotent"]}


def webhook_rows(hook, hook_alo):
    return [("webhook events/s at saturation (exactly-once)", hook["events_per_s"]),
            ("webhook p50 / p99 ms at 2,000 events/s", f'{hook["p50_ms"]} / {hook["p99_ms"]}'),
            ("webhook peak RSS MiB", hook["peak_rss_mib"]),
            ("webhook events/s at saturation, at-least-once (the peer's guarantee)", hook_alo["events_per_s"]),
            ("webhook p50 / p99 ms at 2,000 events/s, at-least-once", f'{hook_alo["p50_ms"]} / {hook_alo["p99_ms"]}')]


def peer_ratio_rows(hook, hook_alo, peer):
    if peer.get("error") or not peer.get("events_per_s"):
        return [("bridge ÷ peer (webhook events/s)", f'peer failed: {peer.get("error")}')]
    return [("bridge ÷ peer (webhook events/s, exactly-once)", round(hook["events_per_s"] / peer["events_per_s"], 3)),
            ("bridge ÷ peer (webhook events/s, at-least-once like the peer)",
             round(hook_alo["events_per_s"] / peer["events_per_s"], 3))]


def peer_rows(peer):
    if peer.get("error"):
        return [("peer", f'{peer["name"]} failed: {peer["error"]}')]
    return [(f'peer events/s at saturation, batch 1 / 10 ({peer["name"]})',
             f'{peer["events_per_s_batch_1"]} / {peer["events_per_s_batch_10"]}'),
            ("peer p50 / p99 ms at 2,000 events/s", f'{peer["p50_ms"]} / {peer["p99_ms"]}'),
            ("peer peak RSS MiB", peer["peak_rss_mib"]),
            ("peer records in Kafka / events acknowledged", f'{peer["records_in_topic"]} / {peer["events"]}')]


def print_rows(rows):
    print("| figure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


def partial_report(only, report, rows):
    """A BENCH_ONLY run's report: target/bench/report-<only>.json, and its table on stdout."""
    with open(os.path.join(OUT, f"report-{only}.json"), "w") as f:
        json.dump(report, f, indent=2)
    print_rows(rows)


def main():
    os.makedirs(OUT, exist_ok=True)
    prefix = f"bench{int(time.time())}"
    only = os.environ.get("BENCH_ONLY")
    if only == "snapshot":
        log(f"snapshot only (BENCH_ONLY=snapshot): {TICKETS} tickets, exactly-once ...")
        snap = snapshot_bench(prefix + "s")
        partial_report(only, {"snapshot": snap}, [(f"snapshot {name}", value) for name, value in snap.items()])
        return
    if only == "instructions":
        log(f"snapshot instructions only (BENCH_ONLY=instructions): {INSTR_TICKETS} tickets under callgrind ...")
        instr = instructions_bench(prefix + "i")
        partial_report(only, {"snapshot_instructions": instr}, instruction_rows(instr))
        return
    if only in ("peer", "webhook"):
        log(f"{only} only (BENCH_ONLY={only}) ...")
        partial, rows = {}, []
        hook, runs, hook_alo, peer = webhook_bench(
            prefix, bridge_on=only == "webhook", peer_on=only == "peer" or os.environ.get("BENCH_NO_PEER") != "1")
        if hook is not None:
            partial.update(webhook=hook, webhook_runs=runs, webhook_at_least_once=hook_alo)
            rows += webhook_rows(hook, hook_alo)
        if peer is not None:
            partial.update(peers=[peer], peers_note=PEERS_NOTE)
            rows += peer_rows(peer)
            if hook is not None:
                rows += peer_ratio_rows(hook, hook_alo, peer)
        partial_report(only, partial, rows)
        return
    log(f"snapshot: {TICKETS} tickets, exactly-once ...")
    snap = snapshot_bench(prefix + "s")
    log(f"snapshot: {json.dumps(snap)}")
    log(f"snapshot instructions: {INSTR_TICKETS} tickets under callgrind ...")
    instr = instructions_bench(prefix + "i")
    log(f"snapshot instructions: {json.dumps({k: v for k, v in instr.items() if k != 'top_functions'})}")
    log("webhook ingest, the bridge (exactly-once and at-least-once) and the peer side by side ...")
    hook, runs, hook_alo, peer = webhook_bench(prefix)
    log(f"webhook: {json.dumps(hook)}")
    log(f"webhook, at-least-once: {json.dumps({k: v for k, v in hook_alo.items() if k != 'runs'})}")
    log(f"peer: {json.dumps({k: v for k, v in peer.items() if k != 'runs'})}")
    size = mean_record_size(f"{prefix}s.{ORG}.tickets")
    log(f"Kafka ceiling with {size}-byte records ...")
    ceiling = kafka_ceiling(size, prefix)
    report = {"snapshot": snap, "snapshot_instructions": instr, "webhook": hook, "webhook_runs": runs,
              "webhook_at_least_once": hook_alo, "kafka_ceiling": ceiling,
              "peers": [peer], "peers_note": PEERS_NOTE}
    with open(os.path.join(OUT, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    ratio = hook["events_per_s"] / ceiling["records_per_s"] if ceiling["records_per_s"] else 0
    snap_ratio = snap["records_per_s"] / ceiling["records_per_s"] if ceiling["records_per_s"] else 0
    print_rows([
        ("snapshot records/s", snap["records_per_s"]),
        ("snapshot API calls / minimum", f'{snap["api_calls"]} / {snap["min_api_calls"]}'),
        ("snapshot CPU µs per record", snap["cpu_us_per_record"]),
        ("snapshot peak RSS MiB", snap["peak_rss_mib"]),
        *instruction_rows(instr),
        *webhook_rows(hook, hook_alo),
        (f'Kafka ceiling records/s ({size} B, transactional)', ceiling["records_per_s"]),
        ("Kafka ceiling records/s (idempotent)", ceiling["records_per_s_idempotent"]),
        ("bridge ÷ Kafka ceiling (webhook events/s)", round(ratio, 3)),
        ("bridge ÷ Kafka ceiling (snapshot records/s)", round(snap_ratio, 3)),
        *peer_rows(peer),
        *peer_ratio_rows(hook, hook_alo, peer),
    ])
    print(f"\nReport: {os.path.relpath(os.path.join(OUT, 'report.json'), ROOT)}")


if __name__ == "__main__":
    main()
