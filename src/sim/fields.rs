//! Field metadata of the org (`/fields`, legacy `/organizationFields`) and the custom-field values that
//! match it. Values are derived from (seed, record, version), never stored.

use serde_json::{Map, Value, json};

use super::module::Module;
use super::rng::hash;

#[derive(Debug, Clone, Copy)]
pub enum CfType {
    Text,
    Picklist(&'static [&'static str]),
    Date,
    Boolean,
    Number,
    Email,
}

impl CfType {
    fn name(self) -> &'static str {
        match self {
            CfType::Text => "Text",
            CfType::Picklist(_) => "Picklist",
            CfType::Date => "Date",
            CfType::Boolean => "Boolean",
            CfType::Number => "Number",
            CfType::Email => "Email",
        }
    }
}

/// One custom field. `mutable` ones take a new value on every update of the record.
#[derive(Debug, Clone, Copy)]
pub struct CfDef {
    pub api_name: &'static str,
    pub label: &'static str,
    pub ty: CfType,
    pub mutable: bool,
}

const fn cf(api_name: &'static str, label: &'static str, ty: CfType, mutable: bool) -> CfDef {
    CfDef { api_name, label, ty, mutable }
}

const SEVERITY: &[&str] = &["S1 - Critical", "S2 - Major", "S3 - Minor", "S4 - Cosmetic"];
const REGION: &[&str] = &["EMEA", "NA", "LATAM", "APAC"];
const TIER: &[&str] = &["Bronze", "Silver", "Gold", "Platinum"];
const SEGMENT: &[&str] = &["SMB", "Mid-Market", "Enterprise"];
const OUTCOME: &[&str] = &["Resolved", "Follow-up", "No answer", "Escalated"];

const TICKET_CF: &[CfDef] = &[
    cf("cf_order_number", "Order Number", CfType::Text, false),
    cf("cf_severity", "Severity", CfType::Picklist(SEVERITY), true),
    cf("cf_region", "Region", CfType::Picklist(REGION), false),
    cf("cf_renewal_date", "Renewal Date", CfType::Date, true),
    cf("cf_vip", "VIP", CfType::Boolean, false),
    cf("cf_sla_hours", "SLA Hours", CfType::Number, true),
];
const CONTACT_CF: &[CfDef] = &[
    cf("cf_loyalty_tier", "Loyalty Tier", CfType::Picklist(TIER), true),
    cf("cf_customer_since", "Customer Since", CfType::Date, false),
    cf("cf_backup_email", "Backup Email", CfType::Email, false),
];
const ACCOUNT_CF: &[CfDef] = &[
    cf("cf_segment", "Segment", CfType::Picklist(SEGMENT), true),
    cf("cf_arr", "ARR", CfType::Number, true),
];
const TASK_CF: &[CfDef] = &[cf("cf_effort_hours", "Effort Hours", CfType::Number, true)];
const CALL_CF: &[CfDef] = &[cf("cf_outcome", "Outcome", CfType::Picklist(OUTCOME), true)];
const EVENT_CF: &[CfDef] = &[cf("cf_venue", "Venue", CfType::Text, false)];
const PRODUCT_CF: &[CfDef] = &[cf("cf_sku", "SKU", CfType::Text, false)];
const CONTRACT_CF: &[CfDef] = &[cf("cf_po_number", "PO Number", CfType::Text, false)];
const AGENT_CF: &[CfDef] = &[cf("cf_shift", "Shift", CfType::Picklist(REGION), false)];

/// The custom fields of a module (empty for modules without layouts).
pub fn custom_fields(module: Module) -> &'static [CfDef] {
    match module {
        Module::Tickets => TICKET_CF,
        Module::Contacts => CONTACT_CF,
        Module::Accounts => ACCOUNT_CF,
        Module::Tasks => TASK_CF,
        Module::Calls => CALL_CF,
        Module::Events => EVENT_CF,
        Module::Products => PRODUCT_CF,
        Module::Contracts => CONTRACT_CF,
        Module::Agents => AGENT_CF,
        _ => &[],
    }
}

/// Standard (non-custom) fields listed by the metadata endpoints: (apiName, label, type).
fn standard_fields(module: Module) -> &'static [(&'static str, &'static str, &'static str)] {
    match module {
        Module::Tickets => &[
            ("subject", "Subject", "Text"),
            ("departmentId", "Department", "LookUp"),
            ("contactId", "Contact Name", "LookUp"),
            ("email", "Email", "Email"),
            ("phone", "Phone", "Phone"),
            ("description", "Description", "Textarea"),
            ("status", "Status", "Picklist"),
            ("assigneeId", "Ticket Owner", "LookUp"),
            ("productId", "Product Name", "LookUp"),
            ("priority", "Priority", "Picklist"),
            ("channel", "Channel", "Picklist"),
            ("dueDate", "Due Date", "DateTime"),
            ("category", "Category", "Picklist"),
            ("classification", "Classification", "Picklist"),
        ],
        Module::Contacts => &[
            ("firstName", "First Name", "Text"),
            ("lastName", "Last Name", "Text"),
            ("email", "Email", "Email"),
            ("phone", "Phone", "Phone"),
            ("mobile", "Mobile", "Phone"),
            ("accountId", "Account Name", "LookUp"),
            ("title", "Title", "Text"),
            ("type", "Contact Type", "Picklist"),
        ],
        Module::Accounts => &[
            ("accountName", "Account Name", "Text"),
            ("website", "Website", "URL"),
            ("phone", "Phone", "Phone"),
            ("industry", "Industry", "Picklist"),
            ("ownerId", "Account Owner", "LookUp"),
        ],
        Module::Tasks | Module::Calls | Module::Events => &[
            ("subject", "Subject", "Text"),
            ("departmentId", "Department", "LookUp"),
            ("ownerId", "Owner", "LookUp"),
            ("ticketId", "Ticket", "LookUp"),
            ("status", "Status", "Picklist"),
            ("priority", "Priority", "Picklist"),
            ("dueDate", "Due Date", "DateTime"),
        ],
        Module::Products => &[
            ("productName", "Product Name", "Text"),
            ("productCode", "Product Code", "Text"),
            ("unitPrice", "Unit Price", "Currency"),
            ("departmentIds", "Departments", "Multiselect"),
        ],
        Module::Contracts => &[
            ("contractName", "Contract Name", "Text"),
            ("accountId", "Account Name", "LookUp"),
            ("startDate", "Contract Start Date", "Date"),
            ("endDate", "Contract End Date", "Date"),
        ],
        Module::Agents => &[
            ("firstName", "First Name", "Text"),
            ("lastName", "Last Name", "Text"),
            ("emailId", "Email", "Email"),
        ],
        _ => &[],
    }
}

/// Modules that have field metadata, in the order their field ids are numbered.
pub const FIELD_MODULES: [Module; 9] = [
    Module::Tickets,
    Module::Contacts,
    Module::Accounts,
    Module::Tasks,
    Module::Calls,
    Module::Events,
    Module::Products,
    Module::Contracts,
    Module::Agents,
];

/// A field's place: (module, index within the module's standard+custom list).
fn field_global_index(module: Module, local: usize) -> u64 {
    let mut base = 0usize;
    for m in FIELD_MODULES {
        if m == module {
            return (base + local) as u64;
        }
        base += standard_fields(m).len() + custom_fields(m).len();
    }
    base as u64
}

/// One field as `GET /api/v1/fields?module=` (new) or `/organizationFields` (legacy) lists it.
pub fn field_json(module: Module, local: usize, id_of: &dyn Fn(u64) -> u64, legacy: bool) -> Option<Value> {
    let std = standard_fields(module);
    let id = id_of(field_global_index(module, local)).to_string();
    let (api, label, ty, custom, allowed): (&str, &str, &str, bool, Option<Vec<Value>>) =
        if let Some((api, label, ty)) = std.get(local) {
            let allowed = match *api {
                "status" => Some(
                    [("Open", "Open"), ("On Hold", "On Hold"), ("Escalated", "Open"), ("Closed", "Closed")]
                        .iter()
                        .map(|(v, t)| json!({"value": v, "statusType": t}))
                        .collect(),
                ),
                "priority" => Some(["High", "Medium", "Low"].iter().map(|v| json!(v)).collect()),
                _ => None,
            };
            (api, label, ty, false, allowed)
        } else {
            let def = custom_fields(module).get(local - std.len())?;
            let allowed = match def.ty {
                CfType::Picklist(values) => Some(values.iter().map(|v| json!(v)).collect()),
                _ => None,
            };
            (def.api_name, def.label, def.ty.name(), true, allowed)
        };
    let module_name = module.fields_module().unwrap_or("tickets");
    let max_length = match ty {
        "Textarea" => 65535,
        "Text" | "Email" | "Phone" | "URL" => 255,
        _ => 0,
    };
    let value = if legacy {
        json!({
            "id": id,
            "apiName": api,
            "name": api,
            "displayLabel": label,
            "type": ty,
            "isCustomField": custom,
            "isMandatory": api == "subject",
            "maxLength": max_length,
            "allowedValues": allowed.map(|vals| vals.into_iter().map(|v| match v {
                Value::Object(o) => o.get("value").cloned().unwrap_or(Value::Null),
                other => other,
            }).collect::<Vec<_>>()),
            "module": module_name,
        })
    } else {
        json!({
            "id": id,
            "apiName": api,
            "displayLabel": label,
            "i18NLabel": label,
            "type": ty,
            "isCustomField": custom,
            "isMandatory": api == "subject",
            "isSystemMandatory": api == "subject",
            "isEncryptedField": false,
            "isNested": false,
            "isRemovable": custom,
            "maxLength": max_length,
            "decimalPlaces": if ty == "Number" { json!(0) } else { Value::Null },
            "allowedValues": allowed,
            "defaultValue": Value::Null,
            "toolTip": "",
            "toolTipType": "noHelp",
            "module": module_name,
        })
    };
    Some(value)
}

/// Every field of a module with metadata.
pub fn module_fields(module: Module, id_of: &dyn Fn(u64) -> u64, legacy: bool) -> Vec<Value> {
    let n = standard_fields(module).len() + custom_fields(module).len();
    (0..n).filter_map(|i| field_json(module, i, id_of, legacy)).collect()
}

/// Number of fields across all modules (for id → field lookups).
pub fn total_fields() -> u64 {
    field_global_index(Module::OrganizationFields, 0)
}

/// Resolves a global field index back to (module, local index).
pub fn locate_field(global: u64) -> Option<(Module, usize)> {
    let mut base = 0u64;
    for m in FIELD_MODULES {
        let n = (standard_fields(m).len() + custom_fields(m).len()) as u64;
        if global < base + n {
            return Some((m, (global - base) as usize));
        }
        base += n;
    }
    None
}

/// The value of one custom field on one record version; `cf` values are strings or null.
pub fn cf_value(seed: u64, module: Module, idx: u32, version: u32, k: usize, def: &CfDef) -> Value {
    let v = if def.mutable { version as u64 } else { 0 };
    let h = hash(&[seed, module.code(), idx as u64, v, k as u64, 0xCF]);
    if h % 5 == 0 {
        return Value::Null;
    }
    let s = match def.ty {
        CfType::Text => format!("{}-{:05}", &def.label[..2].to_uppercase(), h % 100_000),
        CfType::Picklist(values) => values[(h as usize / 7) % values.len()].to_owned(),
        CfType::Date => {
            let day = (h / 11) % 730;
            let date = chrono::NaiveDate::from_ymd_opt(2025, 1, 1)
                .and_then(|d| d.checked_add_days(chrono::Days::new(day)));
            match date {
                Some(d) => d.format("%Y-%m-%d").to_string(),
                None => return Value::Null,
            }
        }
        CfType::Boolean => if (h / 13) % 2 == 0 { "true" } else { "false" }.to_owned(),
        CfType::Number => ((h / 17) % 500).to_string(),
        CfType::Email => format!("alt{}@example.net", (h / 19) % 10_000),
    };
    Value::String(s)
}

/// The `cf` object and the legacy `customFields` (label-keyed) object of a record.
pub fn cf_objects(seed: u64, module: Module, idx: u32, version: u32) -> (Value, Value) {
    let mut cf = Map::new();
    let mut legacy = Map::new();
    for (k, def) in custom_fields(module).iter().enumerate() {
        let v = cf_value(seed, module, idx, version, k, def);
        cf.insert(def.api_name.to_owned(), v.clone());
        legacy.insert(def.label.to_owned(), v);
    }
    (Value::Object(cf), Value::Object(legacy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_index_round_trip() {
        let total = total_fields();
        assert!(total > 0);
        for g in 0..total {
            let (m, l) = locate_field(g).unwrap_or((Module::Teams, 0));
            assert_eq!(field_global_index(m, l), g);
        }
        assert!(locate_field(total).is_none());
    }

    #[test]
    fn cf_values_are_strings_or_null() {
        let (cf, _) = cf_objects(42, Module::Tickets, 3, 0);
        let obj = cf.as_object().cloned().unwrap_or_default();
        assert_eq!(obj.len(), TICKET_CF.len());
        assert!(obj.values().all(|v| v.is_string() || v.is_null()));
    }
}
