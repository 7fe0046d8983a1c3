//! Calls to URLs that tenants choose (the `outbound` section): closed to every address inside
//! the network unless listed here. See [`crate::outbound`] for what counts as inside.

use serde::Deserialize;

use crate::outbound::AllowedHost;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Names, addresses and networks that tenant-chosen URLs may reach although they are
    /// inside the network: `hooks.internal.example`, `hooks.internal.example:9000`,
    /// `10.1.2.3`, `127.0.0.1:9000`, `[fd00::5]:9000`, `10.20.0.0/16`. Each entry is checked
    /// when the configuration is read.
    pub allow_hosts: Vec<AllowedHost>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::Config;
    use crate::outbound::AllowedHost;

    #[test]
    fn entries_are_read_and_a_bad_one_is_named_by_its_place() {
        let config = Config::parse(
            r#"
outbound:
  allow_hosts: ["hooks.internal.example:9000", "127.0.0.1:9000", "10.20.0.0/16"]
"#,
            &BTreeMap::<String, String>::new(),
        )
        .unwrap();
        assert_eq!(config.outbound.allow_hosts.len(), 3);
        assert_eq!(
            config.outbound.allow_hosts[1],
            "127.0.0.1:9000".parse::<AllowedHost>().unwrap()
        );

        let problems: Vec<String> = Config::parse(
            r#"
outbound:
  allow_hosts: ["hooks.internal.example", "10.20.0.1/16"]
"#,
            &BTreeMap::<String, String>::new(),
        )
        .unwrap_err()
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("outbound.allow_hosts[1]: `10.20.0.1/16` is not a network"),
            "{problems:?}"
        );

        let unknown = Config::parse(
            "outbound: { allow: [\"x.example\"] }",
            &BTreeMap::<String, String>::new(),
        )
        .unwrap_err();
        assert!(
            unknown.problems()[0].path.starts_with("outbound"),
            "{unknown}"
        );
    }
}
