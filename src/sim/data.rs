//! The record store: compact fixed-size records per module, generated from the seed.
//!
//! Only what changes (status, relations, timestamps, a version counter) is stored; text is derived from
//! (seed, index, version) when a record is rendered, which keeps a million tickets in ~60 MB.

use std::collections::BTreeMap;

use super::module::Module;
use super::rng::hash;

/// "No relation" in a relation slot.
pub const NONE: u32 = u32::MAX;

pub const FLAG_TRASHED: u8 = 1;
pub const FLAG_DELETED: u8 = 2;

const DAY_MS: i64 = 86_400_000;
/// Seeded records are spread over the two years before `data_end`.
const SPAN_MS: i64 = 730 * DAY_MS;

/// One record. Relations are indices into other tables; their meaning depends on the module
/// (see `rel_meaning` in render.rs).
#[derive(Debug, Clone, Copy)]
pub struct Rec {
    pub created: i64,
    pub modified: i64,
    pub version: u32,
    pub rel: [u32; 3],
    pub status: u8,
    pub priority: u8,
    pub channel: u8,
    pub flags: u8,
    pub threads: u16,
    pub comments: u16,
    pub comment_version: u16,
}

impl Rec {
    pub fn live(&self) -> bool {
        self.flags & (FLAG_TRASHED | FLAG_DELETED) == 0
    }
}

/// Record counts per module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    pub counts: BTreeMap<Module, u32>,
}

impl Scale {
    /// The `--scale` default: a mid-sized help desk.
    pub fn standard() -> Self {
        Self::from_pairs(&[
            (Module::Tickets, 12_000),
            (Module::Contacts, 3_000),
            (Module::Accounts, 600),
            (Module::Departments, 4),
            (Module::Products, 50),
            (Module::Agents, 25),
            (Module::Teams, 5),
            (Module::Tasks, 2_000),
            (Module::Calls, 1_000),
            (Module::Events, 1_000),
            (Module::Contracts, 300),
            (Module::Articles, 200),
            (Module::TicketThreads, 3),
            (Module::TicketComments, 2),
        ])
    }

    /// A small org for tests.
    pub fn small() -> Self {
        Self::from_pairs(&[
            (Module::Tickets, 120),
            (Module::Contacts, 40),
            (Module::Accounts, 10),
            (Module::Departments, 3),
            (Module::Products, 8),
            (Module::Agents, 6),
            (Module::Teams, 2),
            (Module::Tasks, 25),
            (Module::Calls, 15),
            (Module::Events, 15),
            (Module::Contracts, 8),
            (Module::Articles, 12),
            (Module::TicketThreads, 3),
            (Module::TicketComments, 2),
        ])
    }

    fn from_pairs(pairs: &[(Module, u32)]) -> Self {
        Self { counts: pairs.iter().copied().collect() }
    }

    pub fn get(&self, m: Module) -> u32 {
        self.counts.get(&m).copied().unwrap_or(0)
    }

    /// Applies `tickets=1000,contacts=50` over the current counts. For `ticket_threads` and
    /// `ticket_comments` the number is the most per ticket.
    pub fn apply(&mut self, spec: &str) -> Result<(), String> {
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, n) = part.split_once('=').ok_or_else(|| format!("'{part}' is not module=count"))?;
            let module = Module::from_name(name.trim())
                .filter(|m| *m != Module::OrganizationFields)
                .ok_or_else(|| format!("unknown module '{name}'"))?;
            let n: u32 = n.trim().parse().map_err(|_| format!("'{n}' is not a count for {name}"))?;
            let cap = match module {
                Module::TicketThreads | Module::TicketComments => 200,
                Module::Departments | Module::Agents => 10_000,
                _ => 9_000_000,
            };
            if n > cap {
                return Err(format!("{name}={n} exceeds the maximum {cap}"));
            }
            if matches!(module, Module::Departments | Module::Agents) && n == 0 {
                return Err(format!("{name} needs at least 1"));
            }
            self.counts.insert(module, n);
        }
        Ok(())
    }
}

/// All record tables of the org.
#[derive(Debug)]
pub struct Store {
    pub seed: u64,
    /// Four leading digits shared by every id of the org, as on a real Desk portal.
    pub id_prefix: u64,
    pub tables: Vec<Vec<Rec>>,
    pub max_threads: u16,
    pub max_comments: u16,
}

impl Store {
    pub fn generate(seed: u64, scale: &Scale, data_end_ms: i64) -> Self {
        let id_prefix = 1000 + hash(&[seed, 0x1D]) % 9000;
        let mut store = Store {
            seed,
            id_prefix,
            tables: Module::STORED.iter().map(|_| Vec::new()).collect(),
            max_threads: scale.get(Module::TicketThreads).min(200) as u16,
            max_comments: scale.get(Module::TicketComments).min(200) as u16,
        };
        // Relations point at tables generated before, so referenced modules come first.
        let order = [
            Module::Departments,
            Module::Agents,
            Module::Teams,
            Module::Accounts,
            Module::Contacts,
            Module::Products,
            Module::Tickets,
            Module::Tasks,
            Module::Calls,
            Module::Events,
            Module::Contracts,
            Module::Articles,
        ];
        for module in order {
            let n = scale.get(module);
            let recs = store.generate_table(module, n, data_end_ms);
            if let Some(t) = module.table() {
                store.tables[t] = recs;
            }
        }
        store
    }

    fn generate_table(&self, module: Module, n: u32, data_end_ms: i64) -> Vec<Rec> {
        let seed = self.seed;
        // Departments and agents predate everything else.
        let span = match module {
            Module::Departments | Module::Agents | Module::Teams => SPAN_MS / 10,
            _ => SPAN_MS,
        };
        let start = data_end_ms - SPAN_MS - DAY_MS;
        let step = if n == 0 { 0 } else { span / i64::from(n) };
        let mut out = Vec::with_capacity(n as usize);
        let mut prev_created = start;
        for i in 0..n {
            let h = hash(&[seed, module.code(), u64::from(i)]);
            // Whole seconds, and about one record in ten sharing the previous one's createdTime, so
            // a keyset walk on createdTime has to cope with ties.
            let mut created = start + i64::from(i) * step;
            created -= created.rem_euclid(1000);
            if i > 0 && h % 10 == 0 {
                created = prev_created;
            }
            created = created.max(prev_created);
            prev_created = created;
            let age = data_end_ms - created;
            let modified = if h % 4 == 0 {
                created
            } else {
                created + ((h >> 8) as i64).rem_euclid(age.clamp(1, 60 * DAY_MS))
            };
            let rel = self.pick_relations(module, h);
            let threads = if module == Module::Tickets && self.max_threads > 0 {
                1 + ((h >> 20) % u64::from(self.max_threads)) as u16
            } else {
                0
            };
            let comments = if module == Module::Tickets && self.max_comments > 0 {
                ((h >> 24) % (u64::from(self.max_comments) + 1)) as u16
            } else {
                0
            };
            let status = match module {
                Module::Tickets => match (h >> 32) % 10 {
                    0..=3 => 0,
                    4 => 1,
                    5 => 2,
                    _ => 3,
                },
                _ => ((h >> 32) % 4) as u8,
            };
            out.push(Rec {
                created,
                modified,
                version: 0,
                rel,
                status,
                priority: ((h >> 36) % 4) as u8,
                channel: ((h >> 40) % 6) as u8,
                flags: 0,
                threads,
                comments,
                comment_version: 0,
            });
        }
        out
    }

    /// Chooses relation indices for a new record from the tables that already exist.
    pub fn pick_relations(&self, module: Module, h: u64) -> [u32; 3] {
        let pick = |m: Module, salt: u64, optional_one_in: u64| -> u32 {
            let n = self.len(m) as u64;
            if n == 0 {
                return NONE;
            }
            let x = hash(&[h, salt]);
            if optional_one_in > 0 && x % optional_one_in == 0 {
                return NONE;
            }
            ((x >> 8) % n) as u32
        };
        match module {
            Module::Tickets => {
                [pick(Module::Departments, 1, 0), pick(Module::Contacts, 2, 0), pick(Module::Agents, 3, 5)]
            }
            Module::Contacts => [pick(Module::Accounts, 1, 4), NONE, pick(Module::Agents, 3, 0)],
            Module::Accounts => [NONE, NONE, pick(Module::Agents, 3, 0)],
            Module::Products | Module::Teams | Module::Agents => {
                [pick(Module::Departments, 1, 0), NONE, NONE]
            }
            Module::Tasks | Module::Calls | Module::Events => {
                [pick(Module::Departments, 1, 0), pick(Module::Tickets, 2, 3), pick(Module::Agents, 3, 0)]
            }
            Module::Contracts => {
                [pick(Module::Departments, 1, 0), pick(Module::Accounts, 2, 0), pick(Module::Products, 3, 2)]
            }
            Module::Articles => [pick(Module::Departments, 1, 0), NONE, pick(Module::Agents, 3, 0)],
            _ => [NONE; 3],
        }
    }

    pub fn table(&self, m: Module) -> &[Rec] {
        match m.table().and_then(|t| self.tables.get(t)) {
            Some(t) => t,
            None => &[],
        }
    }

    pub fn table_mut(&mut self, m: Module) -> Option<&mut Vec<Rec>> {
        m.table().and_then(|t| self.tables.get_mut(t))
    }

    pub fn len(&self, m: Module) -> usize {
        self.table(m).len()
    }

    pub fn get(&self, m: Module, idx: u32) -> Option<&Rec> {
        self.table(m).get(idx as usize)
    }

    fn base(&self, m: Module) -> u64 {
        self.id_prefix * 1_000_000_000_000 + m.code() * 10_000_000_000
    }

    /// The id of record `idx` of a stored module: 16 digits, org prefix first.
    pub fn id(&self, m: Module, idx: u32) -> u64 {
        self.base(m) + (u64::from(idx) + 1) * 1000 + 1
    }

    /// Id of a relation slot, `None` for an empty slot.
    pub fn rel_id(&self, m: Module, idx: u32) -> Option<u64> {
        (idx != NONE).then(|| self.id(m, idx))
    }

    /// The index of an id of module `m`, if it names an existing record (live or not).
    pub fn index_of(&self, m: Module, id: u64) -> Option<u32> {
        let off = id.checked_sub(self.base(m))?;
        if off % 1000 != 1 || off >= 10_000_000_000 {
            return None;
        }
        let idx = (off / 1000).checked_sub(1)?;
        let idx = u32::try_from(idx).ok()?;
        ((idx as usize) < self.len(m)).then_some(idx)
    }

    /// The index of a live record.
    pub fn live_index_of(&self, m: Module, id: u64) -> Option<u32> {
        self.index_of(m, id).filter(|i| self.get(m, *i).is_some_and(Rec::live))
    }

    pub fn thread_id(&self, ticket: u32, k: u16) -> u64 {
        self.base(Module::TicketThreads) + (u64::from(ticket) * 256 + u64::from(k)) * 4 + 3
    }

    pub fn comment_id(&self, ticket: u32, k: u16) -> u64 {
        self.base(Module::TicketComments) + (u64::from(ticket) * 256 + u64::from(k)) * 4 + 3
    }

    /// (ticket index, thread-or-comment number) of a thread/comment id.
    pub fn child_of(&self, m: Module, id: u64) -> Option<(u32, u16)> {
        let off = id.checked_sub(self.base(m))?;
        if off % 4 != 3 || off >= 10_000_000_000 {
            return None;
        }
        let n = off / 4;
        let ticket = u32::try_from(n / 256).ok()?;
        Some((ticket, (n % 256) as u16))
    }

    pub fn field_id(&self, global: u64) -> u64 {
        self.base(Module::OrganizationFields) + (global + 1) * 1000 + 1
    }

    pub fn field_global(&self, id: u64) -> Option<u64> {
        let off = id.checked_sub(self.base(Module::OrganizationFields))?;
        if off % 1000 != 1 {
            return None;
        }
        (off / 1000).checked_sub(1)
    }

    /// Number of live records.
    pub fn live_count(&self, m: Module) -> usize {
        self.table(m).iter().filter(|r| r.live()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_sorted_by_created() {
        let a = Store::generate(42, &Scale::small(), 1_767_225_600_000);
        let b = Store::generate(42, &Scale::small(), 1_767_225_600_000);
        let ta = a.table(Module::Tickets);
        let tb = b.table(Module::Tickets);
        assert_eq!(ta.len(), 120);
        for (x, y) in ta.iter().zip(tb) {
            assert_eq!((x.created, x.modified, x.rel), (y.created, y.modified, y.rel));
        }
        assert!(ta.windows(2).all(|w| w[0].created <= w[1].created));
        assert!(ta.iter().all(|r| r.modified >= r.created));
    }

    #[test]
    fn ids_round_trip() {
        let s = Store::generate(1, &Scale::small(), 1_767_225_600_000);
        for i in [0u32, 5, 119] {
            let id = s.id(Module::Tickets, i);
            assert!((15..=19).contains(&id.to_string().len()));
            assert_eq!(s.index_of(Module::Tickets, id), Some(i));
            assert_eq!(s.index_of(Module::Contacts, id), None);
        }
        assert_eq!(s.index_of(Module::Tickets, s.id(Module::Tickets, 120)), None);
        let t = s.thread_id(7, 2);
        assert_eq!(s.child_of(Module::TicketThreads, t), Some((7, 2)));
    }

    #[test]
    fn scale_parsing() {
        let mut sc = Scale::small();
        assert!(sc.apply("tickets=5, contacts=7").is_ok());
        assert_eq!(sc.get(Module::Tickets), 5);
        assert!(sc.apply("nope=1").is_err());
        assert!(sc.apply("tickets").is_err());
        assert!(sc.apply("tickets=x").is_err());
    }
}
