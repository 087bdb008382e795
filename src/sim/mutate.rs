//! Changes to the org (from `/_sim/mutations`, `/_sim/workload` and `moveToTrash`) and the webhook
//! events they cause.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::config::{DeletePayload, DeleteStyle};
use super::data::{FLAG_DELETED, FLAG_TRASHED, NONE, Rec, Store};
use super::module::Module;
use super::render;
use super::rng::hash;
use super::{Sim, lock, now_ms, webhooks, write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

impl Op {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "create" => Some(Op::Create),
            "update" => Some(Op::Update),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// One change as webhooks see it.
#[derive(Debug, Clone)]
pub struct Event {
    pub module: Module,
    pub event_type: String,
    pub payload: Value,
    /// Previous values of the changed fields (`*_Update` only).
    pub prev_state: Option<Value>,
    /// Names of the changed fields (cf fields by api name), for `Ticket_Update.fields` filters.
    pub changed: Vec<String>,
    pub department: Option<u64>,
    pub time_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum MutateError {
    #[error("module {0} cannot be changed with op {1}")]
    Unsupported(&'static str, &'static str),
    #[error("no live {0} record to change")]
    NothingToChange(&'static str),
    #[error("id {1} is not a live {0} record")]
    UnknownId(&'static str, String),
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Create => "create",
        Op::Update => "update",
        Op::Delete => "delete",
    }
}

/// Applies `count` changes (or one per id in `ids`) and delivers their events. Returns the ids changed.
pub fn apply(
    sim: &Arc<Sim>,
    module: Module,
    op: Op,
    count: usize,
    ids: &[String],
) -> Result<Vec<String>, MutateError> {
    let mut events = Vec::new();
    let mut changed_ids = Vec::new();
    let mut failure = None;
    {
        let mut store = write(&sim.store);
        // Named records must all exist before anything changes, so a bad id changes nothing.
        let mut targets: Vec<&str> = Vec::new();
        for id in ids {
            if !targets.contains(&id.as_str()) {
                targets.push(id);
            }
        }
        let stored = module.table().is_some();
        if stored && op != Op::Create {
            if let Some(bad) = targets
                .iter()
                .find(|id| id.parse::<u64>().ok().and_then(|n| store.live_index_of(module, n)).is_none())
            {
                return Err(MutateError::UnknownId(module.name(), (*bad).to_owned()));
            }
        }
        let n = if targets.is_empty() { count } else { targets.len() };
        for i in 0..n {
            match apply_one(sim, &mut store, module, op, targets.get(i).copied()) {
                Ok((id, evs)) => {
                    changed_ids.push(id);
                    events.extend(evs);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    sim.stats.mutations.fetch_add(changed_ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
    // Whatever changed is announced, even when a later step failed.
    for ev in events {
        webhooks::dispatch(sim, ev);
    }
    match failure {
        Some(e) if changed_ids.is_empty() => Err(e),
        _ => Ok(changed_ids),
    }
}

fn pick_live(sim: &Sim, store: &Store, module: Module, pred: impl Fn(&Rec) -> bool) -> Option<u32> {
    let table = store.table(module);
    if table.is_empty() {
        return None;
    }
    let start = lock(&sim.rng).below(table.len() as u64) as usize;
    (0..table.len())
        .map(|k| (start + k) % table.len())
        .find(|i| table[*i].live() && pred(&table[*i]))
        .map(|i| i as u32)
}

fn resolve(
    sim: &Sim,
    store: &Store,
    module: Module,
    target: Option<&str>,
    pred: impl Fn(&Rec) -> bool,
) -> Result<u32, MutateError> {
    match target {
        Some(id) => id
            .parse::<u64>()
            .ok()
            .and_then(|n| store.live_index_of(module, n))
            .filter(|i| store.get(module, *i).is_some_and(&pred))
            .ok_or_else(|| MutateError::UnknownId(module.name(), id.to_owned())),
        None => pick_live(sim, store, module, pred).ok_or(MutateError::NothingToChange(module.name())),
    }
}

fn event_name(module: Module, suffix: &str) -> Option<String> {
    let stem = module.event_stem()?;
    let name = format!("{stem}_{suffix}");
    webhooks::KNOWN_EVENTS.contains(&name.as_str()).then_some(name)
}

fn apply_one(
    sim: &Sim,
    store: &mut Store,
    module: Module,
    op: Op,
    target: Option<&str>,
) -> Result<(String, Vec<Event>), MutateError> {
    let now = now_ms();
    match module {
        Module::TicketThreads | Module::TicketComments => {
            return child_change(sim, store, module, op, target, now);
        }
        Module::OrganizationFields => {
            return Err(MutateError::Unsupported(module.name(), op_name(op)));
        }
        _ => {}
    }
    let org = sim.cfg.org_id;
    let portal = sim.cfg.portal_name.as_str();
    let mut events = Vec::new();
    let idx = match op {
        Op::Create => {
            let table_len = store.len(module);
            let idx = table_len as u32;
            let h = hash(&[store.seed, module.code(), u64::from(idx), 0xC0EA7E]);
            let rel = store.pick_relations(module, h);
            let last_created = store.table(module).last().map_or(now, |r| r.created);
            // The table stays sorted by createdTime, which search relies on.
            let created = now.max(last_created);
            let rec = Rec {
                created,
                modified: created,
                version: 0,
                rel,
                status: 0,
                priority: ((h >> 36) % 4) as u8,
                channel: ((h >> 40) % 6) as u8,
                flags: 0,
                threads: u16::from(module == Module::Tickets && store.max_threads > 0),
                comments: 0,
                comment_version: 0,
            };
            if let Some(t) = store.table_mut(module) {
                t.push(rec);
            }
            let payload = render::detail(store, org, portal, module, idx);
            if let Some(name) = event_name(module, "Add") {
                events.push(Event {
                    module,
                    event_type: name,
                    payload,
                    prev_state: None,
                    changed: Vec::new(),
                    department: render::department_of(store, module, idx),
                    time_ms: created,
                });
            }
            idx
        }
        Op::Update => {
            let idx = resolve(sim, store, module, target, |_| true)?;
            let before = render::detail(store, org, portal, module, idx);
            let choice = lock(&sim.rng).below(4);
            let agents = store.len(Module::Agents) as u64;
            let new_agent = if agents > 0 { lock(&sim.rng).below(agents) as u32 } else { NONE };
            if let Some(rec) = store.table_mut(module).and_then(|t| t.get_mut(idx as usize)) {
                rec.version = rec.version.wrapping_add(1);
                rec.modified = now.max(rec.modified + 1);
                match choice {
                    0 => rec.status = (rec.status + 1) % 4,
                    1 => rec.priority = (rec.priority + 1) % 4,
                    2 if matches!(
                        module,
                        Module::Tickets | Module::Tasks | Module::Calls | Module::Events
                    ) =>
                    {
                        rec.rel[2] = if rec.rel[2] == new_agent { NONE } else { new_agent };
                    }
                    _ => {}
                }
            }
            let after = render::detail(store, org, portal, module, idx);
            let (prev, changed) = diff(&before, &after);
            if let Some(name) = event_name(module, "Update") {
                events.push(Event {
                    module,
                    event_type: name,
                    payload: after,
                    prev_state: Some(prev),
                    changed,
                    department: render::department_of(store, module, idx),
                    time_ms: store.get(module, idx).map_or(now, |r| r.modified),
                });
            }
            idx
        }
        Op::Delete => {
            let idx = resolve(sim, store, module, target, |_| true)?;
            let before = render::detail(store, org, portal, module, idx);
            if let Some(rec) = store.table_mut(module).and_then(|t| t.get_mut(idx as usize)) {
                rec.flags |= if module.trashable() { FLAG_TRASHED } else { FLAG_DELETED };
                rec.modified = now.max(rec.modified + 1);
            }
            let after = render::detail(store, org, portal, module, idx);
            let department = render::department_of(store, module, idx);
            let style = sim.cfg.delete_style;
            if matches!(style, DeleteStyle::Delete | DeleteStyle::Both)
                && let Some(name) = event_name(module, "Delete")
            {
                let payload = match sim.cfg.delete_payload {
                    DeletePayload::Id => json!({"id": store.id(module, idx).to_string()}),
                    DeletePayload::Full => after.clone(),
                };
                events.push(Event {
                    module,
                    event_type: name,
                    payload,
                    prev_state: None,
                    changed: Vec::new(),
                    department,
                    time_ms: now,
                });
            }
            if matches!(style, DeleteStyle::Update | DeleteStyle::Both)
                && let Some(name) = event_name(module, "Update")
            {
                let (prev, changed) = diff(&before, &after);
                events.push(Event {
                    module,
                    event_type: name,
                    payload: after,
                    prev_state: Some(prev),
                    changed,
                    department,
                    time_ms: now,
                });
            }
            idx
        }
    };
    Ok((store.id(module, idx).to_string(), events))
}

fn child_change(
    sim: &Sim,
    store: &mut Store,
    module: Module,
    op: Op,
    target: Option<&str>,
    now: i64,
) -> Result<(String, Vec<Event>), MutateError> {
    let threads = module == Module::TicketThreads;
    let (ticket, payload, suffix) = match (op, threads) {
        (Op::Create, _) => {
            let ticket = match target {
                Some(_) => resolve(sim, store, Module::Tickets, target, |r| {
                    if threads { r.threads < 255 } else { r.comments < 255 }
                })?,
                None => pick_live(sim, store, Module::Tickets, |r| {
                    if threads { r.threads < 255 } else { r.comments < 255 }
                })
                .ok_or(MutateError::NothingToChange(Module::Tickets.name()))?,
            };
            let Some(rec) = store.table_mut(Module::Tickets).and_then(|t| t.get_mut(ticket as usize)) else {
                return Err(MutateError::NothingToChange(module.name()));
            };
            if sim.cfg.child_bumps_ticket {
                rec.modified = now.max(rec.modified + 1);
            }
            let k = if threads {
                rec.threads += 1;
                rec.threads - 1
            } else {
                rec.comments += 1;
                rec.comment_version = 0;
                rec.comments - 1
            };
            let payload = if threads {
                render::thread(store, ticket, k, true)
            } else {
                render::comment(store, ticket, k)
            };
            (ticket, payload, "Add")
        }
        (Op::Update, false) => {
            let ticket = resolve(sim, store, Module::Tickets, target, |r| r.comments > 0)?;
            let Some(rec) = store.table_mut(Module::Tickets).and_then(|t| t.get_mut(ticket as usize)) else {
                return Err(MutateError::NothingToChange(module.name()));
            };
            rec.comment_version = rec.comment_version.saturating_add(1);
            let k = rec.comments - 1;
            (ticket, render::comment(store, ticket, k), "Update")
        }
        _ => return Err(MutateError::Unsupported(module.name(), op_name(op))),
    };
    let id = payload.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
    let events = event_name(module, suffix)
        .map(|name| Event {
            module,
            event_type: name,
            payload,
            prev_state: None,
            changed: Vec::new(),
            department: render::department_of(store, Module::Tickets, ticket),
            time_ms: now,
        })
        .into_iter()
        .collect();
    Ok((id, events))
}

/// Previous values of the fields that differ, and their names; `cf` is compared key by key.
pub fn diff(before: &Value, after: &Value) -> (Value, Vec<String>) {
    let mut prev = Map::new();
    let mut changed = Vec::new();
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return (Value::Object(prev), changed);
    };
    for (k, av) in a {
        let bv = b.get(k).unwrap_or(&Value::Null);
        if bv == av {
            continue;
        }
        if k == "cf" {
            let mut cf_prev = Map::new();
            if let (Some(bo), Some(ao)) = (bv.as_object(), av.as_object()) {
                for (ck, cav) in ao {
                    let cbv = bo.get(ck).unwrap_or(&Value::Null);
                    if cbv != cav {
                        cf_prev.insert(ck.clone(), cbv.clone());
                        changed.push(ck.clone());
                    }
                }
            }
            prev.insert(k.clone(), Value::Object(cf_prev));
        } else if k == "customFields" {
            prev.insert(k.clone(), bv.clone());
        } else {
            prev.insert(k.clone(), bv.clone());
            changed.push(k.clone());
        }
    }
    (Value::Object(prev), changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_reports_changed_fields_and_cf_keys() {
        let b = json!({"id": "1", "status": "Open", "cf": {"cf_a": "x", "cf_b": null}, "subject": "s"});
        let a = json!({"id": "1", "status": "Closed", "cf": {"cf_a": "y", "cf_b": null}, "subject": "s"});
        let (prev, changed) = diff(&b, &a);
        assert_eq!(prev, json!({"status": "Open", "cf": {"cf_a": "x"}}));
        assert_eq!(changed, vec!["cf_a".to_owned(), "status".to_owned()]);
    }
}
