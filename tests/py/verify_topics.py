"""Independent check of what the bridge wrote: reads every data topic with confluent-kafka's consumer
(isolation.level=read_committed), decodes keys and values with its AvroDeserializer through the schema
registry, folds them into the compacted view (latest value per key, tombstones remove keys), and compares
that with the simulator's ground truth (GET /_sim/state/{module}).

Usage: verify_topics.py --bootstrap B --registry URL --sim URL --prefix P --org ORG module [module ...]
Prints one JSON summary line; exit code 0 when every module matches.
"""
import argparse
import json
import sys
import time
import urllib.request

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


TRACE = bool(__import__("os").environ.get("VERIFY_TRACE"))


def to_desk_json(value):
    """Typed fields + cf + extra merged back into Desk's JSON shape (null == absent)."""
    out = {k: v for k, v in value.items() if k not in ("extra",) and v is not None}
    extra = value.get("extra")
    if extra:
        for k, v in json.loads(extra).items():
            if isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k].update(v)
            else:
                out[k] = v
    return out


# Desk derives these from the clock: they flip without a modification, an event or a new modifiedTime, so no
# change-data capture can follow them. They are compared nowhere.
VOLATILE = {"isOverDue", "isResponseOverdue"}


def normalise(record):
    """Drop nulls (and clock-derived flags) recursively."""
    if isinstance(record, dict):
        return {k: normalise(v) for k, v in record.items() if v is not None and k not in VOLATILE}
    if isinstance(record, list):
        return [normalise(v) for v in record]
    return record


def read_topic(bootstrap, registry, topic):
    key_de = AvroDeserializer(registry)
    val_de = AvroDeserializer(registry)
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"verify-{topic}-{time.time_ns()}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    md = c.list_topics(topic, timeout=15)
    parts = list(md.topics[topic].partitions.keys())
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    remaining = set(parts)
    for p in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
        if hi == 0:
            remaining.discard(p)
    view, reads, events = {}, {}, 0
    trace = {}
    deadline = time.time() + 120
    while remaining and time.time() < deadline:
        m = c.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                remaining.discard(m.partition())
                continue
            raise RuntimeError(m.error())
        key = key_de(m.key(), SerializationContext(topic, MessageField.KEY))["id"]
        if m.value() is None:
            view.pop(key, None)
            continue
        events += 1
        env = val_de(m.value(), SerializationContext(topic, MessageField.VALUE))
        if env["op"] == "r":
            reads[key] = reads.get(key, 0) + 1
        if TRACE:
            trace.setdefault(key, []).append((env["op"], env["source"].get("position"), m.partition(), m.offset()))
        if env["op"] == "d":
            view.pop(key, None)
        else:
            view[key] = to_desk_json(env["after"])
    c.close()
    if TRACE:
        for k, n in reads.items():
            if n > 1:
                print("TRACE", topic, k, trace.get(k), file=sys.stderr)
    if remaining:
        raise RuntimeError(f"{topic}: did not reach the end of partitions {sorted(remaining)}")
    return view, reads, events


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--sim", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--org", required=True)
    ap.add_argument("--allow-duplicate-reads", action="store_true")
    ap.add_argument("modules", nargs="+")
    a = ap.parse_args()
    registry = SchemaRegistryClient({"url": a.registry})
    summary, ok = {}, True
    for module in a.modules:
        topic = f"{a.prefix}.{a.org}.{module}"
        view, reads, events = read_topic(a.bootstrap, registry, topic)
        with urllib.request.urlopen(f"{a.sim}/_sim/state/{module}") as r:
            truth = {str(rec["id"]): rec for rec in json.load(r)}
        missing = sorted(set(truth) - set(view))
        unexpected = sorted(set(view) - set(truth))
        differing = [k for k in truth if k in view and normalise(truth[k]) != normalise(view[k])]
        dup_reads = sum(1 for n in reads.values() if n > 1)
        good = not missing and not unexpected and not differing and (a.allow_duplicate_reads or dup_reads == 0)
        ok = ok and good
        entry = {"truth": len(truth), "view": len(view), "events": events, "missing": len(missing),
                 "unexpected": len(unexpected), "differing": len(differing), "duplicate_reads": dup_reads}
        if differing:
            k = differing[0]
            t, v = normalise(truth[k]), normalise(view[k])
            entry["example"] = {"id": k, "diff": {f: [t.get(f), v.get(f)] for f in sorted(set(t) | set(v))
                                                  if t.get(f) != v.get(f)}}
        if missing:
            entry["missing_example"] = missing[:3]
        if dup_reads:
            entry["duplicate_read_example"] = [k for k, n in reads.items() if n > 1][:3]
        summary[module] = entry
    print(json.dumps({"ok": ok, "modules": summary}, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
