//! Load generator for `make bench`: posts Desk-format webhook deliveries (JSON arrays of `Ticket_Update`
//! events) to a service URL and reports throughput and latency from POST to answer as one JSON line.
//!
//! `--rate 0` runs closed-loop with `--concurrency` workers (saturation); `--rate R` sends R events/s
//! open-loop (latency at a fixed rate), with at most `--concurrency` requests in flight.

use anyhow::{Context, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Args {
    url: String,
    rate: f64,
    batch: usize,
    duration: Duration,
    concurrency: usize,
    org: String,
    /// Extra header `name: value` on every request (e.g. a peer's content type).
    content_type: String,
    /// Wrap each batch as `{"records":[{"value": event}, ...]}` (Kafka-REST style peers).
    records_envelope: bool,
}

fn parse() -> anyhow::Result<Args> {
    let mut a = Args {
        url: String::new(),
        rate: 0.0,
        batch: 1,
        duration: Duration::from_secs(10),
        concurrency: 32,
        org: "60000000001".into(),
        content_type: "application/json".into(),
        records_envelope: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = value()?,
            "--rate" => a.rate = value()?.parse()?,
            "--batch" => a.batch = value()?.parse()?,
            "--duration-s" => a.duration = Duration::from_secs_f64(value()?.parse()?),
            "--concurrency" => a.concurrency = value()?.parse()?,
            "--org" => a.org = value()?,
            "--content-type" => a.content_type = value()?,
            "--records-envelope" => a.records_envelope = true,
            other => bail!("unknown flag {other}"),
        }
    }
    if a.url.is_empty() || a.batch == 0 || a.concurrency == 0 {
        bail!(
            "usage: webhook_load --url URL [--rate EV_PER_S] [--batch N] [--duration-s S] [--concurrency N]"
        );
    }
    if !a.url.starts_with("http://127.") && !a.url.starts_with("http://localhost") {
        bail!("the load generator only targets loopback addresses");
    }
    Ok(a)
}

/// The varying fields of one event, each a marker in its rendered template.
#[derive(Clone, Copy)]
enum Mark {
    Id,
    Number,
    EventTime,
    Modified,
}

impl Mark {
    const ALL: [Mark; 4] = [Mark::Id, Mark::Number, Mark::EventTime, Mark::Modified];

    fn text(self) -> &'static str {
        match self {
            Mark::Id => "@ID@",
            Mark::Number => "@NUMBER@",
            Mark::EventTime => "@EVENT_TIME@",
            Mark::Modified => "@MODIFIED@",
        }
    }
}

/// One event rendered once by serde_json with [`Mark`]s in place of its varying values, split at them:
/// a delivery is then the pieces with the values written between, so the generator spends its CPU on
/// the HTTP exchange rather than on building JSON trees (its CPU is taken from the pipeline it measures,
/// on the same cores).
struct Template {
    /// Literal text, then the mark that follows it (`None` after the last piece).
    pieces: Vec<(String, Option<Mark>)>,
    /// Before the first event, between events, after the last.
    open: &'static str,
    sep: &'static str,
    close: &'static str,
}

impl Template {
    fn new(a: &Args) -> Self {
        let event = serde_json::json!({
            "eventType": "Ticket_Update",
            "orgId": a.org,
            "eventTime": Mark::EventTime.text(),
            "payload": {
                "id": Mark::Id.text(), "ticketNumber": Mark::Number.text(),
                "subject": "Printer on the third floor does not print", "status": "Open",
                "statusType": "Open", "priority": "High", "channel": "Email",
                "departmentId": "1892000000006907", "contactId": "1892000000042032",
                "assigneeId": "1892000000056007", "email": "carol@example.com",
                "createdTime": "2026-01-05T09:12:44.000Z", "modifiedTime": Mark::Modified.text(),
                "dueDate": "2026-01-07T09:12:44.000Z", "isDeleted": false, "isTrashed": false,
                "cf": {"cf_region": "EMEA", "cf_tier": "Gold"}
            },
            "prevState": {"status": "On Hold", "modifiedTime": "2026-01-05T09:12:44.000Z"}
        })
        .to_string();
        let mut pieces = Vec::new();
        let mut rest = event.as_str();
        while let Some((at, mark)) =
            Mark::ALL.iter().filter_map(|&m| rest.find(m.text()).map(|at| (at, m))).min_by_key(|(at, _)| *at)
        {
            pieces.push((rest[..at].to_owned(), Some(mark)));
            rest = &rest[at + mark.text().len()..];
        }
        pieces.push((rest.to_owned(), None));
        let (open, sep, close) = if a.records_envelope {
            (r#"{"records":[{"value":"#, r#"},{"value":"#, "}]}")
        } else {
            ("[", ",", "]")
        };
        Self { pieces, open, sep, close }
    }

    /// Delivery `seq`: `batch` events of distinct ticket ids (cycling through 200,000), modified now.
    fn body(&self, batch: usize, seq: u64) -> Vec<u8> {
        use std::io::Write;
        let now = chrono::Utc::now();
        let modified = now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let event_time = now.timestamp_millis().to_string();
        let mut out = Vec::with_capacity(batch * 768);
        out.extend_from_slice(self.open.as_bytes());
        for i in 0..batch as u64 {
            if i > 0 {
                out.extend_from_slice(self.sep.as_bytes());
            }
            let n = seq * batch as u64 + i;
            for (text, mark) in &self.pieces {
                out.extend_from_slice(text.as_bytes());
                // Writing into a Vec cannot fail.
                let _ = match mark {
                    Some(Mark::Id) => write!(out, "{}", 1_892_000_000_000_000u64 + n % 200_000),
                    Some(Mark::Number) => write!(out, "{}", 100_000 + n % 200_000),
                    Some(Mark::EventTime) => write!(out, "{event_time}"),
                    Some(Mark::Modified) => write!(out, "{modified}"),
                    None => Ok(()),
                };
            }
        }
        out.extend_from_slice(self.close.as_bytes());
        out
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let a = Arc::new(parse()?);
    let template = Arc::new(Template::new(&a));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let (ok, errors, seq) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let start = Instant::now();
    let deadline = start + a.duration;
    let send = {
        let (a, template, http, latencies, ok, errors) =
            (a.clone(), template.clone(), http.clone(), latencies.clone(), ok.clone(), errors.clone());
        move |n: u64| {
            let (a, template, http, latencies, ok, errors) =
                (a.clone(), template.clone(), http.clone(), latencies.clone(), ok.clone(), errors.clone());
            async move {
                let payload = template.body(a.batch, n);
                let t = Instant::now();
                let r = http.post(&a.url).header("content-type", &a.content_type).body(payload).send().await;
                let micros = t.elapsed().as_micros() as u64;
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut l) = latencies.lock() {
                            l.push(micros);
                        }
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    if a.rate <= 0.0 {
        for _ in 0..a.concurrency {
            let (send, seq) = (send.clone(), seq.clone());
            tasks.spawn(async move {
                while Instant::now() < deadline {
                    send(seq.fetch_add(1, Ordering::Relaxed)).await;
                }
            });
        }
    } else {
        let gate = Arc::new(tokio::sync::Semaphore::new(a.concurrency));
        let interval = Duration::from_secs_f64(a.batch as f64 / a.rate);
        let mut next = Instant::now();
        let mut n = 0u64;
        while next < deadline && Instant::now() < deadline {
            tokio::time::sleep_until(next.into()).await;
            // Past the in-flight cap the target cannot keep the rate: stop at the deadline either way.
            let Ok(Ok(permit)) = tokio::time::timeout_at(deadline.into(), gate.clone().acquire_owned()).await
            else {
                break;
            };
            let send = send.clone();
            tasks.spawn(async move {
                send(n).await;
                drop(permit);
            });
            n += 1;
            next += interval;
        }
    }
    while tasks.join_next().await.is_some() {}
    let seconds = start.elapsed().as_secs_f64();
    let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .map_or(0.0, |v| *v as f64 / 1000.0)
    };
    let requests = ok.load(Ordering::Relaxed);
    let events = requests * a.batch as u64;
    println!(
        "{}",
        serde_json::json!({
            "requests": requests, "events": events, "errors": errors.load(Ordering::Relaxed),
            "seconds": seconds, "events_per_s": events as f64 / seconds,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "batch": a.batch, "rate": a.rate,
        })
    );
    Ok(())
}
