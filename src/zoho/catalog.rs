//! The module catalog: for each Desk module, where it is listed, how big a page may be, what the list call
//! must ask for so no per-record detail call is needed, whether it can be searched by time, and which
//! webhook events feed it. Facts from the Desk API reference (list maxima, the tickets list projection).

use super::module::Module;

/// How the snapshot walks a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// The list endpoint sorted by `createdTime` (complete rows, thanks to `list_query`). Should a list (or
    /// a department partition of it) reach Desk's 5000-offset ceiling, the rest is walked by keyset windows
    /// on `createdTime` through `/<module>/search`, with a detail call per record because search rows
    /// are not complete. Partitioning big modules by department keeps that fallback rare.
    Sorted,
    /// Plain `from`/`limit` paging of the list endpoint (small modules without search or sorting).
    List,
    /// One unpaged call (`/teams` takes no `from`/`limit`).
    Whole,
    /// `/organizationFields?module=<m>` once per module that has custom fields.
    FieldMetadata,
    /// One list per parent ticket (`/tickets/{id}/threads`, `/tickets/{id}/comments`).
    PerTicket,
}

#[derive(Debug, Clone, Copy)]
pub struct ModuleSpec {
    pub module: Module,
    /// Path under `/api/v1`.
    pub path: &'static str,
    pub walk: Walk,
    /// Largest `limit` the endpoint accepts.
    pub max_limit: u32,
    /// Where the records are in the response body (`data`, or `teams` for `/teams`).
    pub records_key: &'static str,
    /// Extra list-call parameters (`fields=`, `include=`) that make the list rows complete.
    pub list_query: &'static [(&'static str, &'static str)],
    /// Walk each department separately (`departmentId=`): a big module rarely has 5000 rows per department.
    pub partition_by_department: bool,
    /// Webhook event prefix (`Ticket` for `Ticket_Add` ...); `None` = kept current by the reconciler.
    pub event_stem: Option<&'static str>,
}

/// The tickets list omits these unless asked for with `fields=` (at most 30 names).
const TICKET_LIST_FIELDS: &str = "modifiedTime,description,cf,customFields,resolution,classification,contact,\
secondaryContacts,sharedDepartments,entitySkills,accountId,isDeleted,isTrashed,layoutId,isEscalated,isOverDue,\
isResponseOverdue,taskCount,approvalCount,timeEntryCount,attachmentCount,isSpam,isArchived,teamId,productId";

/// Modules whose custom-field metadata is loaded into `organization_fields`.
pub const FIELD_MODULES: [&str; 9] =
    ["tickets", "contacts", "accounts", "tasks", "calls", "events", "products", "contracts", "agents"];

pub const SEARCH_MAX_LIMIT: u32 = 100;

/// Desk refuses `from` at or past this offset, on lists and on search.
pub const OFFSET_CEILING: u32 = 5000;

pub fn spec(module: Module) -> ModuleSpec {
    let s = |path, walk, max_limit, event_stem| ModuleSpec {
        module,
        path,
        walk,
        max_limit,
        records_key: "data",
        list_query: &[],
        partition_by_department: false,
        event_stem,
    };
    match module {
        Module::Tickets => ModuleSpec {
            list_query: &[("fields", TICKET_LIST_FIELDS)],
            partition_by_department: true,
            ..s("tickets", Walk::Sorted, 100, Some("Ticket"))
        },
        Module::Contacts => s("contacts", Walk::Sorted, 100, Some("Contact")),
        Module::Accounts => s("accounts", Walk::Sorted, 100, Some("Account")),
        Module::Departments => s("departments", Walk::List, 200, Some("Department")),
        Module::Products => s("products", Walk::Sorted, 100, None),
        Module::Agents => s("agents", Walk::List, 200, Some("Agent")),
        Module::Teams => ModuleSpec { records_key: "teams", ..s("teams", Walk::Whole, 100, None) },
        Module::Tasks => s("tasks", Walk::Sorted, 100, Some("Task")),
        Module::Calls => s("calls", Walk::Sorted, 100, Some("Call")),
        Module::Events => s("events", Walk::Sorted, 100, Some("Event")),
        Module::Contracts => s("contracts", Walk::List, 100, None),
        Module::Articles => s("articles", Walk::Sorted, 50, Some("Article")),
        // The legacy `/organizationFields` is deprecated; `/fields` carries the same metadata and more.
        Module::OrganizationFields => s("fields", Walk::FieldMetadata, 100, None),
        Module::TicketThreads => s("threads", Walk::PerTicket, 200, Some("Ticket_Thread")),
        Module::TicketComments => s("comments", Walk::PerTicket, 100, Some("Ticket_Comment")),
    }
}

/// The module a webhook event type belongs to (CONTRACT §5); `None` for event types we do not load.
pub fn module_for_event(event_type: &str) -> Option<Module> {
    // Longest stems first: `Ticket_Thread_Add` must not match `Ticket`.
    const STEMS: [(&str, Module); 11] = [
        ("Ticket_Thread_", Module::TicketThreads),
        ("Ticket_Comment_", Module::TicketComments),
        ("Ticket_", Module::Tickets),
        ("Contact_", Module::Contacts),
        ("Account_", Module::Accounts),
        ("Agent_", Module::Agents),
        ("Department_", Module::Departments),
        ("Task_", Module::Tasks),
        ("Call_", Module::Calls),
        ("Event_", Module::Events),
        ("Article_", Module::Articles),
    ];
    let (stem, module) = STEMS.iter().find(|(stem, _)| event_type.starts_with(stem))?;
    let action = &event_type[stem.len()..];
    matches!(action, "Add" | "Update" | "Delete").then_some(*module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_list_asks_for_at_most_30_fields() {
        assert!(TICKET_LIST_FIELDS.split(',').count() <= 30);
    }

    #[test]
    fn events_map_to_their_modules() {
        assert_eq!(module_for_event("Ticket_Update"), Some(Module::Tickets));
        assert_eq!(module_for_event("Ticket_Thread_Add"), Some(Module::TicketThreads));
        assert_eq!(module_for_event("Ticket_Comment_Update"), Some(Module::TicketComments));
        assert_eq!(module_for_event("Contact_Delete"), Some(Module::Contacts));
        assert_eq!(module_for_event("Ticket_Attachment_Add"), None);
        assert_eq!(module_for_event("Agent_Presence_Update"), None);
        assert_eq!(module_for_event("Nonsense"), None);
    }

    #[test]
    fn every_module_has_a_spec() {
        for m in Module::all() {
            let s = spec(m);
            assert_eq!(s.module, m);
            assert!(s.max_limit >= 50);
        }
    }
}
