//! The CNI versions the plugin speaks, and what each changes in a result.

use crate::error::{CniError, codes};

/// Every version VERSION lists, oldest first.
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A supported CNI version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// 0.3.0.
    V0_3_0,
    /// 0.3.1.
    V0_3_1,
    /// 0.4.0: CHECK and `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: `ips` lose `version`.
    V1_0_0,
    /// 1.1.0: STATUS, GC, interface `mtu`.
    V1_1_0,
}

impl Version {
    /// The newest version.
    pub const LATEST: Version = Version::V1_1_0;

    /// Parses a `cniVersion`; anything not in [`SUPPORTED`] is error 1.
    pub fn parse(text: &str) -> Result<Version, CniError> {
        Ok(match text {
            "0.3.0" => Version::V0_3_0,
            "0.3.1" => Version::V0_3_1,
            "0.4.0" => Version::V0_4_0,
            "1.0.0" => Version::V1_0_0,
            "1.1.0" => Version::V1_1_0,
            other => {
                return Err(CniError::new(
                    codes::INCOMPATIBLE_VERSION,
                    format!("CNI version `{other}` is not supported"),
                )
                .details(format!("supported: {}", SUPPORTED.join(", "))));
            }
        })
    }

    /// The version as the spec writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Whether CHECK exists in this version (0.4.0 on).
    pub fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// Whether STATUS and GC exist in this version (1.1.0 on).
    pub fn has_status_and_gc(self) -> bool {
        self >= Version::V1_1_0
    }

    /// Whether `ips` entries carry `version` ("4"/"6"): before 1.0.0.
    pub fn ips_carry_version(self) -> bool {
        self < Version::V1_0_0
    }

    /// Whether interfaces carry `mtu`: 1.1.0 on.
    pub fn interfaces_carry_mtu(self) -> bool {
        self >= Version::V1_1_0
    }
}

/// The answer to VERSION: `cniVersion` is the one asked with (the newest
/// when stdin named none).
pub fn version_answer(requested: Option<&str>) -> String {
    serde_json::json!({
        "cniVersion": requested.unwrap_or(Version::LATEST.as_str()),
        "supportedVersions": SUPPORTED,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_version_parses_back() {
        for v in SUPPORTED {
            assert_eq!(Version::parse(v).map(Version::as_str), Ok(v));
        }
        for bad in ["0.1.0", "0.2.0", "1.2.0", "", "1.0", "v1.0.0"] {
            assert_eq!(
                Version::parse(bad).map_err(|e| e.code),
                Err(codes::INCOMPATIBLE_VERSION),
                "{bad}"
            );
        }
    }

    #[test]
    fn what_each_version_changes() {
        assert!(!Version::V0_3_1.has_check());
        assert!(Version::V0_4_0.has_check());
        assert!(Version::V0_4_0.ips_carry_version());
        assert!(!Version::V1_0_0.ips_carry_version());
        assert!(!Version::V1_0_0.has_status_and_gc());
        assert!(Version::V1_1_0.has_status_and_gc());
        assert!(Version::V1_1_0.interfaces_carry_mtu());
    }

    #[test]
    fn version_answers_in_the_version_asked() {
        let v: serde_json::Value =
            serde_json::from_str(&version_answer(Some("0.4.0"))).expect("json");
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"].as_array().map(Vec::len), Some(5));
    }
}
