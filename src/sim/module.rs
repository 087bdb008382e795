//! The modules the simulator serves, with their URL segments, page-size limits, scopes and webhook names.

/// A Desk module as CONTRACT §5 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Module {
    Tickets,
    Contacts,
    Accounts,
    Departments,
    Products,
    Agents,
    Teams,
    Tasks,
    Calls,
    Events,
    Contracts,
    Articles,
    TicketThreads,
    TicketComments,
    OrganizationFields,
}

impl Module {
    /// Modules held as record tables (threads and comments hang off tickets, fields are metadata).
    pub const STORED: [Module; 12] = [
        Module::Tickets,
        Module::Contacts,
        Module::Accounts,
        Module::Departments,
        Module::Products,
        Module::Agents,
        Module::Teams,
        Module::Tasks,
        Module::Calls,
        Module::Events,
        Module::Contracts,
        Module::Articles,
    ];

    pub const ALL: [Module; 15] = [
        Module::Tickets,
        Module::Contacts,
        Module::Accounts,
        Module::Departments,
        Module::Products,
        Module::Agents,
        Module::Teams,
        Module::Tasks,
        Module::Calls,
        Module::Events,
        Module::Contracts,
        Module::Articles,
        Module::TicketThreads,
        Module::TicketComments,
        Module::OrganizationFields,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Module::Tickets => "tickets",
            Module::Contacts => "contacts",
            Module::Accounts => "accounts",
            Module::Departments => "departments",
            Module::Products => "products",
            Module::Agents => "agents",
            Module::Teams => "teams",
            Module::Tasks => "tasks",
            Module::Calls => "calls",
            Module::Events => "events",
            Module::Contracts => "contracts",
            Module::Articles => "articles",
            Module::TicketThreads => "ticket_threads",
            Module::TicketComments => "ticket_comments",
            Module::OrganizationFields => "organization_fields",
        }
    }

    pub fn from_name(name: &str) -> Option<Module> {
        Module::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The `/api/v1/<segment>` of a stored module.
    pub fn from_path(segment: &str) -> Option<Module> {
        Module::STORED.into_iter().find(|m| m.name() == segment)
    }

    /// Position in the store's table array.
    pub fn table(self) -> Option<usize> {
        Module::STORED.iter().position(|m| *m == self)
    }

    /// Distinguishes the id ranges of the modules.
    pub fn code(self) -> u64 {
        match Module::ALL.iter().position(|m| *m == self) {
            Some(p) => p as u64 + 1,
            None => 99,
        }
    }

    /// The largest `limit` each list endpoint accepts (reference B.2).
    pub fn max_limit(self) -> u32 {
        match self {
            Module::Departments | Module::Agents | Module::TicketThreads => 200,
            Module::Articles => 50,
            _ => 100,
        }
    }

    /// `Desk.<family>.<OP>` families any one of which grants reading the module.
    pub fn scope_families(self) -> &'static [&'static str] {
        match self {
            Module::Tickets | Module::TicketThreads | Module::TicketComments => &["tickets"],
            Module::Contacts | Module::Accounts => &["contacts"],
            Module::Departments | Module::Agents | Module::Teams => &["basic"],
            Module::Products => &["products"],
            Module::Tasks => &["tasks", "activities"],
            Module::Calls => &["calls", "activities"],
            Module::Events => &["events", "activities"],
            Module::Contracts => &["contracts"],
            Module::Articles => &["articles"],
            Module::OrganizationFields => &["settings"],
        }
    }

    /// The webhook event-name stem, for modules Desk sends events for.
    pub fn event_stem(self) -> Option<&'static str> {
        match self {
            Module::Tickets => Some("Ticket"),
            Module::Contacts => Some("Contact"),
            Module::Accounts => Some("Account"),
            Module::Agents => Some("Agent"),
            Module::Departments => Some("Department"),
            Module::Tasks => Some("Task"),
            Module::Calls => Some("Call"),
            Module::Events => Some("Event"),
            Module::Articles => Some("Article"),
            Module::TicketThreads => Some("Ticket_Thread"),
            Module::TicketComments => Some("Ticket_Comment"),
            _ => None,
        }
    }

    /// Whether Desk moves the module's records to a recycle bin (`isTrashed`) rather than deleting.
    pub fn trashable(self) -> bool {
        matches!(self, Module::Tickets | Module::Contacts | Module::Accounts)
    }

    /// Whether `/api/v1/<module>/search` exists.
    pub fn searchable(self) -> bool {
        matches!(
            self,
            Module::Tickets
                | Module::Contacts
                | Module::Accounts
                | Module::Tasks
                | Module::Calls
                | Module::Events
                | Module::Products
                | Module::Articles
        )
    }

    /// Modules whose records carry a `departmentId` used by webhook department filters.
    pub fn has_department(self) -> bool {
        matches!(
            self,
            Module::Tickets
                | Module::Tasks
                | Module::Calls
                | Module::Events
                | Module::TicketThreads
                | Module::TicketComments
        )
    }

    /// The `module=` value of `/fields` and `/organizationFields`, for modules with field metadata.
    pub fn fields_module(self) -> Option<&'static str> {
        match self {
            Module::Tickets => Some("tickets"),
            Module::Contacts => Some("contacts"),
            Module::Accounts => Some("accounts"),
            Module::Tasks => Some("tasks"),
            Module::Calls => Some("calls"),
            Module::Events => Some("events"),
            Module::Products => Some("products"),
            Module::Contracts => Some("contracts"),
            Module::Agents => Some("agents"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Module::ALL {
            assert_eq!(Module::from_name(m.name()), Some(m));
        }
        assert_eq!(Module::from_path("ticket_threads"), None);
        assert_eq!(Module::Tickets.table(), Some(0));
    }
}
