//! The Desk modules the bridge can load, by their config / topic-suffix names (CONTRACT §5).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    OrganizationFields,
    TicketThreads,
    TicketComments,
}

impl Module {
    /// Loaded when the config's `modules` list is empty.
    pub const DEFAULT: [Module; 13] = [
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
        Module::OrganizationFields,
    ];

    /// Opt-in: they cost one list call per parent ticket.
    pub const OPT_IN: [Module; 2] = [Module::TicketThreads, Module::TicketComments];

    pub fn all() -> impl Iterator<Item = Module> {
        Self::DEFAULT.into_iter().chain(Self::OPT_IN)
    }

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
            Module::OrganizationFields => "organization_fields",
            Module::TicketThreads => "ticket_threads",
            Module::TicketComments => "ticket_comments",
        }
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Module {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Module::all().find(|m| m.name() == s).ok_or_else(|| {
            let known: Vec<&str> = Module::all().map(Module::name).collect();
            format!("unknown module {s:?}; expected one of {}", known.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Module::all() {
            assert_eq!(m.name().parse::<Module>(), Ok(m));
        }
        assert!("contract".parse::<Module>().is_err());
    }
}
