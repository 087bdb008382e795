//! ZoHo data centers: each has its own accounts server and Desk host, and an org lives in exactly one.
//!
//! The Desk host is always derived from the data center (or the `desk_url` override), never from the
//! token response's `api_domain`, which names the generic `zohoapis` host and not Desk.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataCenter {
    #[serde(rename = "com")]
    Us,
    #[serde(rename = "eu")]
    Eu,
    #[serde(rename = "in")]
    India,
    #[serde(rename = "com.au")]
    Australia,
    #[serde(rename = "jp")]
    Japan,
    #[serde(rename = "com.cn")]
    China,
    #[serde(rename = "ca")]
    Canada,
    #[serde(rename = "sa")]
    SaudiArabia,
    #[serde(rename = "uk")]
    Uk,
}

impl DataCenter {
    pub const ALL: [DataCenter; 9] = [
        DataCenter::Us,
        DataCenter::Eu,
        DataCenter::India,
        DataCenter::Australia,
        DataCenter::Japan,
        DataCenter::China,
        DataCenter::Canada,
        DataCenter::SaudiArabia,
        DataCenter::Uk,
    ];

    /// The config spelling (`com`, `eu`, `com.au`, ...).
    pub fn code(self) -> &'static str {
        match self {
            DataCenter::Us => "com",
            DataCenter::Eu => "eu",
            DataCenter::India => "in",
            DataCenter::Australia => "com.au",
            DataCenter::Japan => "jp",
            DataCenter::China => "com.cn",
            DataCenter::Canada => "ca",
            DataCenter::SaudiArabia => "sa",
            DataCenter::Uk => "uk",
        }
    }

    /// Canada is the odd one out: its hosts live under `zohocloud.ca`, not `zoho.ca`.
    fn domain(self) -> String {
        match self {
            DataCenter::Canada => "zohocloud.ca".to_owned(),
            other => format!("zoho.{}", other.code()),
        }
    }

    /// Minutes east of UTC of the time zone whose midnight resets the org's daily API credits. The
    /// reference (C.1) says credits reset "at midnight of the DC's timezone" without naming the zones;
    /// these are the standard-time offsets of where each data center serves from (an inference:
    /// US Pacific, EU Central, India, Australia Eastern, Japan, China, Canada Eastern, Saudi Arabia, UK).
    /// Daylight saving is not applied, so a reset may come up to an hour later than this says; a call made
    /// early meets THRESHOLD_EXCEEDED, whose Retry-After then gives the exact time.
    pub fn credit_reset_utc_offset_min(self) -> i32 {
        match self {
            DataCenter::Us => -8 * 60,
            DataCenter::Eu => 60,
            DataCenter::India => 5 * 60 + 30,
            DataCenter::Australia => 10 * 60,
            DataCenter::Japan => 9 * 60,
            DataCenter::China => 8 * 60,
            DataCenter::Canada => -5 * 60,
            DataCenter::SaudiArabia => 3 * 60,
            DataCenter::Uk => 0,
        }
    }

    /// Base URL of the OAuth accounts server, e.g. `https://accounts.zoho.eu`.
    pub fn accounts_url(self) -> String {
        format!("https://accounts.{}", self.domain())
    }

    /// Base URL of the Desk host, e.g. `https://desk.zoho.eu`; the API root is `<this>/api/v1`.
    pub fn desk_url(self) -> String {
        format!("https://desk.{}", self.domain())
    }
}

impl fmt::Display for DataCenter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for DataCenter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataCenter::ALL.into_iter().find(|dc| dc.code() == s).ok_or_else(|| {
            let known: Vec<&str> = DataCenter::ALL.iter().map(|dc| dc.code()).collect();
            format!("unknown data center {s:?}; expected one of {}", known.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_data_center_maps_to_its_hosts() {
        let table = [
            ("com", "https://accounts.zoho.com", "https://desk.zoho.com"),
            ("eu", "https://accounts.zoho.eu", "https://desk.zoho.eu"),
            ("in", "https://accounts.zoho.in", "https://desk.zoho.in"),
            ("com.au", "https://accounts.zoho.com.au", "https://desk.zoho.com.au"),
            ("jp", "https://accounts.zoho.jp", "https://desk.zoho.jp"),
            ("com.cn", "https://accounts.zoho.com.cn", "https://desk.zoho.com.cn"),
            ("ca", "https://accounts.zohocloud.ca", "https://desk.zohocloud.ca"),
            ("sa", "https://accounts.zoho.sa", "https://desk.zoho.sa"),
            ("uk", "https://accounts.zoho.uk", "https://desk.zoho.uk"),
        ];
        assert_eq!(table.len(), DataCenter::ALL.len());
        for (code, accounts, desk) in table {
            let dc: DataCenter = code.parse().unwrap_or(DataCenter::Us);
            assert_eq!(dc.code(), code);
            assert_eq!(dc.accounts_url(), accounts, "{code}");
            assert_eq!(dc.desk_url(), desk, "{code}");
        }
    }

    #[test]
    fn unknown_data_center_names_the_choices() {
        let err = "de".parse::<DataCenter>().err().unwrap_or_default();
        assert!(err.contains("\"de\"") && err.contains("com.au"), "{err}");
    }
}
