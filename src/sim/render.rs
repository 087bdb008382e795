//! Renders stored records as Desk JSON. Text fields derive from (seed, index, version).

use serde_json::{Map, Value, json};

use super::data::{FLAG_DELETED, FLAG_TRASHED, NONE, Rec, Store};
use super::fields::cf_objects;
use super::module::Module;
use super::rng::hash;

const FIRST: &[&str] = &[
    "Ava", "Liam", "Noah", "Emma", "Mia", "Lucas", "Sofia", "Mateo", "Aria", "Ethan", "Priya", "Kenji",
    "Zara", "Omar", "Lena", "Ivan", "Chloe", "Diego", "Hana", "Felix",
];
const LAST: &[&str] = &[
    "Smith", "Garcia", "Chen", "Müller", "Okafor", "Rossi", "Tanaka", "Novak", "Silva", "Kumar", "Dubois",
    "Larsen", "Cohen", "Haddad", "Petrov", "Kowalski", "Nguyen", "Brown", "Santos", "Ali",
];
const COMPANY: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Wonka",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Aperture",
    "Massive",
    "Pied Piper",
    "Gringotts",
];
const SUFFIX: &[&str] = &["Inc", "GmbH", "Ltd", "LLC", "SA", "BV"];
const TOPIC: &[&str] = &[
    "Cannot log in to the portal",
    "Invoice shows the wrong amount",
    "Order has not arrived",
    "Refund request",
    "Password reset link expired",
    "App crashes on start",
    "Question about my subscription",
    "Shipping address change",
    "Feature request: export to CSV",
    "Payment declined",
    "Damaged item received",
    "Integration returns 500",
    "How do I add a user?",
    "Slow page loads since the update",
];
const DEPARTMENTS: &[&str] = &["Support", "Billing", "Sales", "Logistics", "Engineering", "Success"];
const PRODUCTS: &[&str] = &["Router", "Cloud Plan", "Sensor", "Gateway", "Analytics", "Mobile App"];
const TICKET_STATUS: &[(&str, &str)] =
    &[("Open", "Open"), ("On Hold", "On Hold"), ("Escalated", "Open"), ("Closed", "Closed")];
const PRIORITY: &[Option<&str>] = &[Some("High"), Some("Medium"), Some("Low"), None];
const CHANNEL: &[&str] = &["Email", "Phone", "Web", "Chat", "Twitter", "Forums"];
const ACTIVITY_STATUS: &[&str] = &["Not Started", "In Progress", "Completed", "Waiting on someone else"];
const CATEGORY: &[&str] = &["General", "Technical", "Billing", "Shipping"];
const INDUSTRY: &[&str] = &["Retail", "Manufacturing", "Healthcare", "Finance", "Education"];

fn pick<'a>(list: &'a [&'a str], h: u64) -> &'a str {
    list[(h % list.len() as u64) as usize]
}

/// `2026-01-15T10:22:33.000Z`
pub fn iso(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => "1970-01-01T00:00:00.000Z".to_owned(),
    }
}

/// Parses Desk's ISO form (also accepts any RFC 3339) into epoch ms.
pub fn parse_iso(s: &str) -> Option<i64> {
    crate::change::parse_desk_time(s.trim())
}

fn id_or_null(id: Option<u64>) -> Value {
    id.map_or(Value::Null, |i| Value::String(i.to_string()))
}

struct Ctx<'a> {
    store: &'a Store,
    org_id: u64,
    portal: &'a str,
}

fn person(seed: u64, module: Module, idx: u32) -> (&'static str, &'static str) {
    let h = hash(&[seed, module.code(), u64::from(idx), 0x9E]);
    (pick(FIRST, h), pick(LAST, h >> 16))
}

fn email_of(first: &str, last: &str, n: u32, domain: &str) -> String {
    let clean: String = last.chars().map(|c| if c == 'ü' { 'u' } else { c }).collect();
    format!("{}.{}{}@{}", first.to_lowercase(), clean.to_lowercase(), n, domain)
}

fn contact_basic(c: &Ctx<'_>, idx: u32) -> Value {
    let seed = c.store.seed;
    let (first, last) = person(seed, Module::Contacts, idx);
    let account = c.store.get(Module::Contacts, idx).map_or(NONE, |r| r.rel[0]);
    json!({
        "id": c.store.id(Module::Contacts, idx).to_string(),
        "firstName": first,
        "lastName": last,
        "email": email_of(first, last, idx, "example.com"),
        "phone": format!("+1 555 {:04}", idx % 10_000),
        "account": if account == NONE { Value::Null } else { json!({
            "id": c.store.id(Module::Accounts, account).to_string(),
            "accountName": account_name(seed, account),
            "website": format!("https://{}.example.org", account_slug(seed, account)),
        })},
    })
}

fn account_name(seed: u64, idx: u32) -> String {
    let h = hash(&[seed, Module::Accounts.code(), u64::from(idx), 0xAC]);
    format!("{} {} {}", pick(COMPANY, h), pick(SUFFIX, h >> 12), idx + 1)
}

fn account_slug(seed: u64, idx: u32) -> String {
    account_name(seed, idx).to_lowercase().replace(' ', "-")
}

fn department_name(idx: u32) -> String {
    let base = DEPARTMENTS[idx as usize % DEPARTMENTS.len()];
    if (idx as usize) < DEPARTMENTS.len() {
        base.to_owned()
    } else {
        format!("{base} {}", idx as usize / DEPARTMENTS.len() + 1)
    }
}

fn subject(seed: u64, module: Module, idx: u32) -> String {
    let h = hash(&[seed, module.code(), u64::from(idx), 0x5B]);
    format!("{} ({})", pick(TOPIC, h), idx + 1)
}

fn flags_json(obj: &mut Map<String, Value>, rec: &Rec, module: Module) {
    if module.trashable() {
        obj.insert("isTrashed".into(), json!(rec.flags & FLAG_TRASHED != 0));
    }
    obj.insert("isDeleted".into(), json!(rec.flags & FLAG_DELETED != 0));
}

fn add_cf(obj: &mut Map<String, Value>, seed: u64, module: Module, idx: u32, version: u32) {
    let (cf, legacy) = cf_objects(seed, module, idx, version);
    obj.insert("cf".into(), cf);
    obj.insert("customFields".into(), legacy);
}

/// The record as `GET /api/v1/<module>/<id>` returns it.
pub fn detail(store: &Store, org_id: u64, portal: &str, module: Module, idx: u32) -> Value {
    let Some(rec) = store.get(module, idx) else {
        return Value::Null;
    };
    let c = Ctx { store, org_id, portal };
    let seed = store.seed;
    let id = store.id(module, idx);
    let h = hash(&[seed, module.code(), u64::from(idx)]);
    let hv = hash(&[seed, module.code(), u64::from(idx), u64::from(rec.version), 0xD5]);
    let mut o = Map::new();
    o.insert("id".into(), json!(id.to_string()));
    match module {
        Module::Tickets => ticket_fields(&c, &mut o, rec, idx, h, hv),
        Module::Contacts => {
            let (first, last) = person(seed, module, idx);
            o.insert("firstName".into(), json!(first));
            o.insert("lastName".into(), json!(last));
            o.insert("email".into(), json!(email_of(first, last, idx, "example.com")));
            o.insert("secondaryEmail".into(), Value::Null);
            o.insert("phone".into(), json!(format!("+1 555 {:04}", idx % 10_000)));
            o.insert("mobile".into(), json!(format!("+1 444 {:04}", hv % 10_000)));
            o.insert("title".into(), json!(pick(&["Manager", "Engineer", "Buyer", "Owner"], hv)));
            o.insert("type".into(), json!(pick(&["Customer", "Partner", "Prospect"], h >> 4)));
            o.insert("accountId".into(), id_or_null(store.rel_id(Module::Accounts, rec.rel[0])));
            o.insert("ownerId".into(), id_or_null(store.rel_id(Module::Agents, rec.rel[2])));
            o.insert("city".into(), json!(pick(&["Berlin", "Austin", "Pune", "Lyon", "Osaka"], h >> 9)));
            o.insert("country".into(), json!(pick(&["Germany", "USA", "India", "France", "Japan"], h >> 9)));
            o.insert("isSpam".into(), json!(false));
            o.insert("webUrl".into(), json!(web_url(&c, "contacts", id)));
            add_cf(&mut o, seed, module, idx, rec.version);
        }
        Module::Accounts => {
            o.insert("accountName".into(), json!(account_name(seed, idx)));
            o.insert("website".into(), json!(format!("https://{}.example.org", account_slug(seed, idx))));
            o.insert("phone".into(), json!(format!("+1 333 {:04}", idx % 10_000)));
            o.insert("industry".into(), json!(pick(INDUSTRY, hv)));
            o.insert("annualRevenue".into(), json!(format!("{}", (h % 900 + 100) * 10_000)));
            o.insert("ownerId".into(), id_or_null(store.rel_id(Module::Agents, rec.rel[2])));
            o.insert("webUrl".into(), json!(web_url(&c, "accounts", id)));
            add_cf(&mut o, seed, module, idx, rec.version);
        }
        Module::Departments => {
            let name = department_name(idx);
            o.insert("name".into(), json!(name));
            o.insert("description".into(), json!(format!("{name} desk")));
            o.insert("isEnabled".into(), json!(rec.status != 3));
            o.insert("isDefault".into(), json!(idx == 0));
            o.insert("isAssignToTeamEnabled".into(), json!(false));
            o.insert("chatStatus".into(), json!(pick(&["AVAILABLE", "DISABLED"], h)));
            o.insert("hasLogo".into(), json!(false));
            o.insert("creatorId".into(), Value::Null);
            o.insert("nameInCustomerPortal".into(), json!(name));
            o.insert("associatedAgentIds".into(), json!([]));
        }
        Module::Products => {
            let name = format!("{} {}", pick(PRODUCTS, h), idx + 1);
            o.insert("productName".into(), json!(name));
            o.insert("productCode".into(), json!(format!("P-{:05}", idx + 1)));
            o.insert("unitPrice".into(), json!(format!("{}.00", (hv % 500) + 10)));
            o.insert("description".into(), json!(format!("{name}, revision {}", rec.version)));
            o.insert(
                "departmentIds".into(),
                json!(
                    store
                        .rel_id(Module::Departments, rec.rel[0])
                        .map(|d| d.to_string())
                        .into_iter()
                        .collect::<Vec<_>>()
                ),
            );
            o.insert("ownerId".into(), Value::Null);
            add_cf(&mut o, seed, module, idx, rec.version);
        }
        Module::Agents => {
            let (first, last) = person(seed, module, idx);
            o.insert("firstName".into(), json!(first));
            o.insert("lastName".into(), json!(last));
            o.insert("name".into(), json!(format!("{first} {last}")));
            o.insert("emailId".into(), json!(email_of(first, last, idx, "helpdesk.example.com")));
            o.insert("phone".into(), json!(format!("+1 222 {:04}", idx % 10_000)));
            o.insert("status".into(), json!(if rec.status == 3 { "DISABLED" } else { "ACTIVE" }));
            o.insert("isConfirmed".into(), json!(true));
            o.insert("roleId".into(), json!((store.id_prefix * 1_000_000_000_000 + 500_001).to_string()));
            o.insert("profileId".into(), json!((store.id_prefix * 1_000_000_000_000 + 600_001).to_string()));
            o.insert(
                "associatedDepartmentIds".into(),
                json!(
                    store
                        .rel_id(Module::Departments, rec.rel[0])
                        .map(|d| d.to_string())
                        .into_iter()
                        .collect::<Vec<_>>()
                ),
            );
            o.insert("zuid".into(), json!((700_000_000 + u64::from(idx)).to_string()));
            o.insert("langCode".into(), json!("en_US"));
            o.insert("timeZone".into(), json!("Europe/Amsterdam"));
            add_cf(&mut o, seed, module, idx, rec.version);
        }
        Module::Teams => {
            o.insert("name".into(), json!(format!("Team {}", idx + 1)));
            o.insert("description".into(), json!(format!("Escalation team {}", idx + 1)));
            o.insert("departmentId".into(), id_or_null(store.rel_id(Module::Departments, rec.rel[0])));
            o.insert("derivedAgents".into(), json!([]));
            o.insert("rolesWithSubordinates".into(), json!([]));
            o.insert("roles".into(), json!([]));
            o.insert("subTeams".into(), json!([]));
        }
        Module::Tasks | Module::Calls | Module::Events => {
            activity_fields(&c, &mut o, module, rec, idx, h, hv)
        }
        Module::Contracts => {
            o.insert("contractName".into(), json!(format!("Support contract {}", idx + 1)));
            o.insert("contractNumber".into(), json!(format!("C-{:06}", idx + 1)));
            o.insert("accountId".into(), id_or_null(store.rel_id(Module::Accounts, rec.rel[1])));
            o.insert("productId".into(), id_or_null(store.rel_id(Module::Products, rec.rel[2])));
            o.insert("departmentId".into(), id_or_null(store.rel_id(Module::Departments, rec.rel[0])));
            o.insert("ownerId".into(), Value::Null);
            o.insert("slaId".into(), Value::Null);
            o.insert("startDate".into(), json!(iso(rec.created)[..10].to_owned()));
            o.insert("endDate".into(), json!(iso(rec.created + 365 * 86_400_000)[..10].to_owned()));
            o.insert("contractStatus".into(), json!(pick(&["ACTIVE", "EXPIRED", "INACTIVE"], hv)));
            o.insert("description".into(), json!(format!("Contract terms v{}", rec.version + 1)));
            add_cf(&mut o, seed, module, idx, rec.version);
        }
        Module::Articles => {
            let title = format!("How to: {}", pick(TOPIC, h).to_lowercase());
            o.insert("title".into(), json!(title));
            o.insert("summary".into(), json!(format!("{title} (revision {})", rec.version)));
            o.insert("permalink".into(), json!(format!("how-to-{}", idx + 1)));
            o.insert("status".into(), json!(pick(&["Published", "Draft", "Review"], h >> 3)));
            o.insert("permission".into(), json!("ALL"));
            o.insert("locale".into(), json!("en"));
            o.insert("authorId".into(), id_or_null(store.rel_id(Module::Agents, rec.rel[2])));
            o.insert("departmentId".into(), id_or_null(store.rel_id(Module::Departments, rec.rel[0])));
            o.insert("categoryId".into(), json!((store.id_prefix * 1_000_000_000_000 + 800_001).to_string()));
            o.insert("viewCount".into(), json!(((hv % 5000) + u64::from(rec.version)).to_string()));
            o.insert("likeCount".into(), json!((hv % 50).to_string()));
            o.insert("latestVersion".into(), json!(format!("{}.0", rec.version + 1)));
            o.insert(
                "webUrl".into(),
                json!(format!("https://{}.example.com/portal/en/kb/articles/how-to-{}", portal, idx + 1)),
            );
        }
        _ => {}
    }
    o.insert("createdTime".into(), json!(iso(rec.created)));
    o.insert("modifiedTime".into(), json!(iso(rec.modified)));
    flags_json(&mut o, rec, module);
    Value::Object(o)
}

fn web_url(c: &Ctx<'_>, tab: &str, id: u64) -> String {
    format!("https://desk.zoho.com/support/{}/ShowHomePage.do#{}/dv/{}", c.portal, tab, id)
}

fn ticket_fields(c: &Ctx<'_>, o: &mut Map<String, Value>, rec: &Rec, idx: u32, h: u64, hv: u64) {
    let store = c.store;
    let seed = store.seed;
    let id = store.id(Module::Tickets, idx);
    let (status, status_type) = TICKET_STATUS[rec.status as usize % TICKET_STATUS.len()];
    let contact = rec.rel[1];
    let (email, phone, account) = if contact == NONE {
        (Value::Null, Value::Null, NONE)
    } else {
        let (first, last) = person(seed, Module::Contacts, contact);
        let acc = store.get(Module::Contacts, contact).map_or(NONE, |r| r.rel[0]);
        (
            json!(email_of(first, last, contact, "example.com")),
            json!(format!("+1 555 {:04}", contact % 10_000)),
            acc,
        )
    };
    let products = store.len(Module::Products) as u64;
    let product = if products > 0 && h % 3 == 0 {
        Some(store.id(Module::Products, ((h >> 5) % products) as u32))
    } else {
        None
    };
    let teams = store.len(Module::Teams) as u64;
    let team =
        if teams > 0 && h % 4 == 0 { Some(store.id(Module::Teams, ((h >> 7) % teams) as u32)) } else { None };
    let due = rec.created + 3 * 86_400_000;
    o.insert("ticketNumber".into(), json!((idx + 101).to_string()));
    o.insert("layoutId".into(), json!((store.id_prefix * 1_000_000_000_000 + 74_001).to_string()));
    o.insert("email".into(), email);
    o.insert("phone".into(), phone);
    o.insert("subject".into(), json!(subject(seed, Module::Tickets, idx)));
    o.insert(
        "description".into(),
        json!(format!(
            "<div>Hello, {} Reference {:x}.</div>",
            pick(TOPIC, h).to_lowercase(),
            hv & 0xFFFF_FFFF
        )),
    );
    o.insert("status".into(), json!(status));
    o.insert("statusType".into(), json!(status_type));
    o.insert(
        "closedTime".into(),
        if status_type == "Closed" { json!(iso(rec.modified)) } else { Value::Null },
    );
    o.insert(
        "onholdTime".into(),
        if status_type == "On Hold" { json!(iso(rec.modified)) } else { Value::Null },
    );
    o.insert("dueDate".into(), json!(iso(due)));
    o.insert("responseDueDate".into(), Value::Null);
    o.insert("customerResponseTime".into(), json!(iso(rec.created)));
    o.insert("category".into(), json!(pick(CATEGORY, h >> 3)));
    o.insert("subCategory".into(), Value::Null);
    o.insert(
        "priority".into(),
        PRIORITY[rec.priority as usize % PRIORITY.len()].map_or(Value::Null, |p| json!(p)),
    );
    o.insert("classification".into(), json!(pick(&["Question", "Problem", "Request", "Others"], hv)));
    o.insert("channel".into(), json!(CHANNEL[rec.channel as usize % CHANNEL.len()]));
    o.insert("language".into(), json!("English"));
    o.insert(
        "resolution".into(),
        if status_type == "Closed" { json!("Resolved by support.") } else { Value::Null },
    );
    o.insert("departmentId".into(), id_or_null(store.rel_id(Module::Departments, rec.rel[0])));
    o.insert("contactId".into(), id_or_null(store.rel_id(Module::Contacts, contact)));
    o.insert("accountId".into(), id_or_null(store.rel_id(Module::Accounts, account)));
    o.insert("productId".into(), id_or_null(product));
    o.insert("assigneeId".into(), id_or_null(store.rel_id(Module::Agents, rec.rel[2])));
    o.insert("teamId".into(), id_or_null(team));
    o.insert("isSpam".into(), json!(false));
    o.insert("isArchived".into(), json!(false));
    o.insert("isEscalated".into(), json!(status == "Escalated"));
    o.insert("isOverDue".into(), json!(status_type != "Closed" && due < c.now_hint()));
    o.insert("isResponseOverdue".into(), json!(false));
    o.insert("threadCount".into(), json!(rec.threads.to_string()));
    o.insert("commentCount".into(), json!(rec.comments.to_string()));
    o.insert("attachmentCount".into(), json!("0"));
    o.insert("taskCount".into(), json!("0"));
    o.insert("approvalCount".into(), json!("0"));
    o.insert("timeEntryCount".into(), json!("0"));
    o.insert("sentiment".into(), json!(pick(&["POSITIVE", "NEUTRAL", "NEGATIVE"], hv >> 5)));
    o.insert("webUrl".into(), json!(web_url(c, "Requests", id)));
    o.insert("contact".into(), if contact == NONE { Value::Null } else { contact_basic(c, contact) });
    o.insert("secondaryContacts".into(), json!([]));
    o.insert("sharedDepartments".into(), json!([]));
    o.insert("entitySkills".into(), json!([]));
    add_cf(o, seed, Module::Tickets, idx, rec.version);
}

impl Ctx<'_> {
    /// Overdue flags are relative to the newest timestamp in the store, which keeps renders
    /// deterministic for a given state rather than drifting with the wall clock.
    fn now_hint(&self) -> i64 {
        let _ = self.org_id;
        self.store.table(Module::Tickets).last().map_or(0, |r| r.created)
    }
}

fn activity_fields(
    c: &Ctx<'_>,
    o: &mut Map<String, Value>,
    module: Module,
    rec: &Rec,
    idx: u32,
    h: u64,
    hv: u64,
) {
    let store = c.store;
    let seed = store.seed;
    let verb = match module {
        Module::Tasks => "Follow up on",
        Module::Calls => "Call about",
        _ => "Meeting about",
    };
    o.insert("subject".into(), json!(format!("{verb} {}", subject(seed, module, idx).to_lowercase())));
    o.insert("departmentId".into(), id_or_null(store.rel_id(Module::Departments, rec.rel[0])));
    o.insert("ticketId".into(), id_or_null(store.rel_id(Module::Tickets, rec.rel[1])));
    o.insert("ownerId".into(), id_or_null(store.rel_id(Module::Agents, rec.rel[2])));
    o.insert("status".into(), json!(ACTIVITY_STATUS[rec.status as usize % ACTIVITY_STATUS.len()]));
    o.insert(
        "priority".into(),
        PRIORITY[rec.priority as usize % PRIORITY.len()].map_or(Value::Null, |p| json!(p)),
    );
    o.insert("category".into(), json!(pick(CATEGORY, h >> 2)));
    o.insert("description".into(), json!(format!("Notes v{} ({:x})", rec.version + 1, hv & 0xFFFF)));
    o.insert("contactId".into(), Value::Null);
    match module {
        Module::Tasks => {
            o.insert("dueDate".into(), json!(iso(rec.created + 2 * 86_400_000)));
            o.insert("isCompleted".into(), json!(rec.status == 2));
            o.insert(
                "completedTime".into(),
                if rec.status == 2 { json!(iso(rec.modified)) } else { Value::Null },
            );
        }
        Module::Calls => {
            o.insert("startTime".into(), json!(iso(rec.created)));
            o.insert("duration".into(), json!(((h % 3600) * 1000).to_string()));
            o.insert("direction".into(), json!(pick(&["inbound", "outbound"], h >> 6)));
        }
        _ => {
            o.insert("startTime".into(), json!(iso(rec.created + 86_400_000)));
            o.insert("duration".into(), json!(((h % 4 + 1) * 1_800_000).to_string()));
            o.insert("location".into(), json!(pick(&["Zoom", "Office", "Customer site"], h >> 6)));
        }
    }
    add_cf(o, seed, module, idx, rec.version);
}

/// Ticket fields the list endpoint leaves out unless `fields=` asks for them.
pub const TICKET_LIST_OMITS: &[&str] = &[
    "modifiedTime",
    "description",
    "cf",
    "customFields",
    "resolution",
    "classification",
    "contact",
    "secondaryContacts",
    "sharedDepartments",
    "entitySkills",
    "isDeleted",
    "isTrashed",
    "isEscalated",
    "isOverDue",
    "isResponseOverdue",
    "taskCount",
    "approvalCount",
    "timeEntryCount",
    "attachmentCount",
];

/// A thread as listed by `/tickets/{id}/threads` (summary) or shown by detail (with content).
pub fn thread(store: &Store, ticket: u32, k: u16, full: bool) -> Value {
    let seed = store.seed;
    let rec = store.get(Module::Tickets, ticket);
    let created = rec.map_or(0, |r| r.created) + i64::from(k) * 3_600_000;
    let h = hash(&[seed, Module::TicketThreads.code(), u64::from(ticket), u64::from(k)]);
    let incoming = k % 2 == 0;
    let (first, last) = person(seed, Module::Contacts, rec.map_or(0, |r| r.rel[1]));
    let mut o = json!({
        "id": store.thread_id(ticket, k).to_string(),
        "ticketId": store.id(Module::Tickets, ticket).to_string(),
        "channel": "EMAIL",
        "direction": if incoming { "in" } else { "out" },
        "status": "SUCCESS",
        "visibility": "public",
        "author": {"name": if incoming { format!("{first} {last}") } else { "Support".to_owned() },
                   "type": if incoming { "END_USER" } else { "AGENT" }},
        "fromEmailAddress": if incoming { email_of(first, last, 0, "example.com") } else { "support@helpdesk.example.com".to_owned() },
        "summary": format!("Message {} on this ticket ({:x})", k + 1, h & 0xFFFF),
        "createdTime": iso(created),
        "sendDateTime": iso(created),
        "hasAttach": false,
        "attachmentCount": "0",
        "contentType": "text/html",
        "isDescriptionThread": k == 0,
    });
    if full && let Some(obj) = o.as_object_mut() {
        obj.insert("content".into(), json!(format!("<div>Message {} body, reference {:x}.</div>", k + 1, h)));
        obj.insert("to".into(), json!("support@helpdesk.example.com"));
        obj.insert("cc".into(), Value::Null);
    }
    o
}

/// A ticket comment; `comment_version` bumps edit the newest comment.
pub fn comment(store: &Store, ticket: u32, k: u16) -> Value {
    let seed = store.seed;
    let rec = store.get(Module::Tickets, ticket);
    let newest = rec.is_some_and(|r| r.comments > 0 && k + 1 == r.comments);
    let edits = if newest { rec.map_or(0, |r| r.comment_version) } else { 0 };
    let created = rec.map_or(0, |r| r.created) + i64::from(k) * 5_400_000 + 60_000;
    let modified = created + i64::from(edits) * 60_000;
    let agent = rec.map_or(NONE, |r| r.rel[2]);
    let agent = if agent == NONE { 0 } else { agent };
    let (first, last) = person(seed, Module::Agents, agent);
    let h = hash(&[seed, Module::TicketComments.code(), u64::from(ticket), u64::from(k), u64::from(edits)]);
    json!({
        "id": store.comment_id(ticket, k).to_string(),
        "ticketId": store.id(Module::Tickets, ticket).to_string(),
        "content": format!("Internal note {} ({:x})", k + 1, h & 0x00FF_FFFF),
        "contentType": "plainText",
        "isPublic": k % 3 == 0,
        "commenterId": store.rel_id(Module::Agents, agent).map(|i| i.to_string()),
        "commenter": {"name": format!("{first} {last}"), "type": "AGENT",
                      "email": email_of(first, last, agent, "helpdesk.example.com")},
        "commentedTime": iso(created),
        "modifiedTime": iso(modified),
        "attachments": [],
        "mention": [],
    })
}

/// Applies the list projection of a module and the `fields=` extras.
pub fn list_item(full: Value, module: Module, extra: &[String], only: bool) -> Value {
    let Value::Object(mut o) = full else {
        return full;
    };
    if module != Module::Tickets {
        return Value::Object(o);
    }
    let cf_all = o.get("cf").cloned();
    if only && !extra.is_empty() {
        let mut out = Map::new();
        if let Some(id) = o.get("id") {
            out.insert("id".into(), id.clone());
        }
        let mut cf_out = Map::new();
        for f in extra {
            if let Some(v) = cf_all.as_ref().and_then(|c| c.get(f)) {
                cf_out.insert(f.clone(), v.clone());
            } else if let Some(v) = o.get(f) {
                out.insert(f.clone(), v.clone());
            }
        }
        if !cf_out.is_empty() {
            out.insert("cf".into(), Value::Object(cf_out));
        }
        return Value::Object(out);
    }
    for key in TICKET_LIST_OMITS {
        if !extra.iter().any(|e| e == key) {
            o.remove(*key);
        }
    }
    let wanted_cf: Map<String, Value> = extra
        .iter()
        .filter(|e| e.starts_with("cf_"))
        .filter_map(|e| cf_all.as_ref().and_then(|c| c.get(e)).map(|v| (e.clone(), v.clone())))
        .collect();
    if !wanted_cf.is_empty() && !o.contains_key("cf") {
        o.insert("cf".into(), Value::Object(wanted_cf));
    }
    Value::Object(o)
}

/// The record's department id, for webhook department filters.
pub fn department_of(store: &Store, module: Module, idx: u32) -> Option<u64> {
    let rec = store.get(module, idx)?;
    match module {
        Module::Tickets
        | Module::Tasks
        | Module::Calls
        | Module::Events
        | Module::Products
        | Module::Teams
        | Module::Agents
        | Module::Articles
        | Module::Contracts => store.rel_id(Module::Departments, rec.rel[0]),
        _ => None,
    }
}
